package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
)

// TestGobgpCLIOnAPISocket runs the stock gobgp CLI against the API socket:
// it lists our neighbour and our announced path, over the socket and over
// BGP_API_TCP. The socket replaces a stale one, is root-only, and goes away
// on Stop.
func TestGobgpCLIOnAPISocket(t *testing.T) {
	cli := goBuild(t, t.TempDir(), "github.com/osrg/gobgp/v4/cmd/gobgp")
	sock := filepath.Join(t.TempDir(), "gobgp.sock")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	_ = stale.Close()

	cfg := testConfig(numbered("10.0.9.2", 65009))
	cfg.APISocket = sock
	cfg.APITCP = "127.0.0.1:50051" // inside the test's own namespace
	s := startSpeaker(t, cfg)
	s.Set("ep", []route.Advert{advert("10.9.0.1/32", "65000:9")})

	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("API socket: %v, %v; want a socket with mode 0600", fi.Mode(), err)
	}
	overUnix, overTCP := []string{"--target", "unix://" + sock}, []string{"-u", "127.0.0.1", "-p", "50051"}
	gobgp := func(target []string, args ...string) string {
		out, err := exec.Command(cli, append(target, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("gobgp %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, target := range [][]string{overUnix, overTCP} {
		if out := gobgp(target, "neighbor"); !strings.Contains(out, "10.0.9.2") || !strings.Contains(out, "65009") {
			t.Errorf("gobgp %v neighbor does not list 10.0.9.2 (AS 65009):\n%s", target, out)
		}
	}
	if out := gobgp(overUnix, "global", "rib", "-a", "ipv4"); !strings.Contains(out, "10.9.0.1/32") || !strings.Contains(out, "65000:9") {
		t.Errorf("gobgp global rib does not show 10.9.0.1/32 with 65000:9:\n%s", out)
	}
	// The API hands out the neighbours' passwords: a user other than root
	// must not get through on loopback TCP either.
	nobody := exec.Command(worldExecutable(t, cli), append(overTCP, "neighbor")...)
	nobody.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := nobody.CombinedOutput(); err == nil || strings.Contains(string(out), "10.0.9.2") {
		t.Errorf("gobgp neighbor as uid 65534 over TCP: err %v, want refused:\n%s", err, out)
	}
	if err := s.Stop(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("API socket left behind after Stop: %v", err)
	}
}

// TestAPISocketFailureKeepsBGP: when the API socket cannot be made (here the
// path holds a regular file) the speaker still runs without its API, keeps
// the error in Status, leaves the file alone, and Set still works.
func TestAPISocketFailureKeepsBGP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "not-a-socket")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.APISocket = path
	s := NewSpeaker(cfg, Options{Log: speakerLog(t)})
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start failed on an API socket error: %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "keep me" {
		t.Errorf("Start clobbered the file at the API socket path")
	}
	s.Set("ep", []route.Advert{advert("10.10.0.1/32")})
	st, serr := s.Status(context.Background())
	if serr != nil || !st.Running || !strings.Contains(st.LastError, "BGP_API_SOCKET") || !strings.Contains(st.LastError, "is not a socket") || len(st.Adverts["ep"]) != 1 {
		t.Fatalf("Status = %+v, %v; want running, the API error kept, the advert recorded", st, serr)
	}
	if err := s.Stop(context.Background(), true); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// worldExecutable copies bin where any user can run it.
func worldExecutable(t *testing.T, bin string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gobgp-cli-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data, err := os.ReadFile(bin)
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "gobgp"), data, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "gobgp")
}

// TestCheckCallerOnLoopback: the owner of a loopback client's socket is read
// from the kernel: root passes, another user does not.
func TestCheckCallerOnLoopback(t *testing.T) {
	for _, tc := range []struct {
		listen string
		uid    uint32
		want   error
	}{{"127.0.0.1:0", 0, nil}, {"127.0.0.1:0", 65534, errNotRoot}, {"[::1]:0", 65534, errNotRoot}, {"[::1]:0", 0, nil}} {
		l, err := net.Listen("tcp", tc.listen)
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		host := l.Addr().(*net.TCPAddr).IP.String()
		client := exec.Command("bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%d; read -t 10 <&3", host, port))
		client.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: tc.uid, Gid: tc.uid}}
		if err := client.Start(); err != nil {
			t.Fatal(err)
		}
		conn, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		got := checkCaller(conn)
		conn.Close()
		l.Close()
		_ = client.Wait()
		if !errors.Is(got, tc.want) || (tc.want == nil && got != nil) {
			t.Errorf("%s, caller uid %d: checkCaller = %v, want %v", tc.listen, tc.uid, got, tc.want)
		}
	}
}

// TestGoBGPErrorKeptInStatus: an error GoBGP logs (it logs a gRPC or BFD
// listener it could not open, and goes on) reaches the log with our field
// names and is kept for Status; once the speaker is stopping GoBGP, the
// error its Stop logs about a StopBgp already made is not.
func TestGoBGPErrorKeptInStatus(t *testing.T) {
	s := NewSpeaker(testConfig(), Options{Log: speakerLog(t)})
	log, hook := logtest.NewNullLogger()
	bridge := &slogBridge{log: logrus.NewEntry(log), failed: s.recordErr}
	gobgp := bridge.logger().With(slog.String("Topic", "Peer"), slog.String("Key", "10.0.0.1"))
	gobgp.Error("Can't listen UDP", slog.String("Address", ":3784"), slog.Any("Error", errors.New("address already in use")))
	st, err := s.Status(context.Background())
	if err != nil || st.LastError != "GoBGP error: Can't listen UDP: address already in use" {
		t.Fatalf("Status = %+v, %v; want GoBGP's error kept", st, err)
	}
	gobgp.Info("Peer Up", slog.String("State", "BGP_FSM_OPENCONFIRM"))
	last := hook.LastEntry()
	if last.Message != "Peer Up" || last.Data["peer"] != "10.0.0.1" || last.Data["topic"] != "Peer" || last.Data["state"] != "BGP_FSM_OPENCONFIRM" {
		t.Errorf("GoBGP's info line logged as %q %v; want peer, topic and state fields", last.Message, last.Data)
	}
	bridge.stopping.Store(true)
	gobgp.Error("failed to stop BGP server", slog.Any("Error", errors.New("BGP server is not running")))
	if st, _ := s.Status(context.Background()); strings.Contains(st.LastError, "failed to stop") {
		t.Errorf("the error of GoBGP's Stop after our StopBgp was kept: %q", st.LastError)
	}
}
