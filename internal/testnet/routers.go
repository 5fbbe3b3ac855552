package testnet

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	frrDir  = "/usr/lib/frr"
	birdBin = "/usr/sbin/bird"
	nftBin  = "/usr/sbin/nft"
)

// FRR is a zebra+bgpd pair running in a namespace, as on a leaf switch.
type FRR struct {
	NS  *NS
	dir string
}

// StartFRR starts zebra and bgpd in ns with bgpdConf as bgpd's configuration,
// and stops them when the test ends. Zebra installs what bgpd learns into the
// namespace's kernel, so tests can check both the RIB and the FIB.
func StartFRR(t testing.TB, ns *NS, bgpdConf string) *FRR {
	t.Helper()
	return startFRR(t, ns, bgpdConf, "zebra", "bgpd")
}

// StartFRRWithBFD is StartFRR with FRR's BFD daemon, bfdd, started between
// zebra and bgpd, for bgpd.conf's `neighbor X bfd`.
func StartFRRWithBFD(t testing.TB, ns *NS, bgpdConf string) *FRR {
	t.Helper()
	return startFRR(t, ns, bgpdConf, "zebra", "bfdd", "bgpd")
}

func startFRR(t testing.TB, ns *NS, bgpdConf string, daemons ...string) *FRR {
	t.Helper()
	RequireBinary(t, filepath.Join(frrDir, "bgpd"))
	dir := ownedTempDir(t, "frr")
	f := &FRR{NS: ns, dir: dir}
	var pids []string
	t.Cleanup(func() { killPidFiles(dir, pids...) })
	for _, daemon := range daemons {
		conf := "hostname " + daemon + "\n"
		if daemon == "bgpd" {
			conf = bgpdConf
		}
		writeFile(t, filepath.Join(dir, daemon+".conf"), conf)
		args := []string{filepath.Join(frrDir, daemon), "-d", "-u", "frr", "-g", "frr", "-P", "0",
			"-f", filepath.Join(dir, daemon+".conf"),
			"-i", filepath.Join(dir, daemon+".pid"),
			"-z", filepath.Join(dir, "zserv.api"),
			"--vty_socket", dir}
		if daemon == "bfdd" {
			args = append(args, "--bfdctl", filepath.Join(dir, "bfdd.sock"))
		}
		pids = append(pids, daemon+".pid")
		ns.Exec(t, args...)
	}
	WaitFor(t, 10*time.Second, "FRR's vty", func() (bool, string) {
		out, err := f.Try("show version")
		return err == nil, out
	})
	return f
}

// Try runs vtysh commands (each a -c) and returns their output.
func (f *FRR) Try(cmds ...string) (string, error) {
	args := []string{"vtysh", "--vty_socket", f.dir}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vtysh %s: %w: %s", strings.Join(cmds, "; "), err, out)
	}
	return string(out), nil
}

// Vtysh runs vtysh commands and fails the test if vtysh fails.
func (f *FRR) Vtysh(t testing.TB, cmds ...string) string {
	t.Helper()
	out, err := f.Try(cmds...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// JSON runs a `show ... json` command and decodes its answer into v.
func (f *FRR) JSON(t testing.TB, cmd string, v any) {
	t.Helper()
	out := f.Vtysh(t, cmd)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("decode %q output: %v\n%s", cmd, err, out)
	}
}

// BIRD is a BIRD 2 daemon running in a namespace.
type BIRD struct {
	NS   *NS
	sock string
}

// StartBIRD starts bird in ns with conf and stops it when the test ends.
func StartBIRD(t testing.TB, ns *NS, conf string) *BIRD {
	t.Helper()
	RequireBinary(t, birdBin)
	dir := t.TempDir()
	confPath := filepath.Join(dir, "bird.conf")
	writeFile(t, confPath, conf)
	b := &BIRD{NS: ns, sock: filepath.Join(dir, "bird.ctl")}
	ns.Exec(t, birdBin, "-c", confPath, "-s", b.sock, "-P", filepath.Join(dir, "bird.pid"))
	t.Cleanup(func() { killPidFiles(dir, "bird.pid") })
	WaitFor(t, 10*time.Second, "BIRD's control socket", func() (bool, string) {
		out, err := b.Try("show status")
		return err == nil, out
	})
	return b
}

// Try runs a birdc command and returns its output.
func (b *BIRD) Try(cmd string) (string, error) {
	args := append([]string{"-s", b.sock}, strings.Fields(cmd)...)
	out, err := exec.Command("birdc", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("birdc %s: %w: %s", cmd, err, out)
	}
	return string(out), nil
}

// Show runs a birdc command and fails the test if birdc fails.
func (b *BIRD) Show(t testing.TB, cmd string) string {
	t.Helper()
	out, err := b.Try(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ownedTempDir is a temp dir FRR's unprivileged daemons can write their
// sockets and pid files into.
func ownedTempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	Host.Exec(t, "chown", "frr:frr", dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func killPidFiles(dir string, names ...string) {
	for _, name := range names {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		_ = exec.Command("kill", "-9", strings.TrimSpace(string(raw))).Run()
	}
}
