// Package testnet builds throwaway networks for tests: network namespaces
// joined by veth pairs, with real FRR and BIRD routers started inside them.
//
// A test package that runs an in-process BGP speaker or programs routes calls
// Main from its TestMain: the test binary re-executes itself inside a fresh
// network namespace, so everything the test does to "the host" lands in a
// namespace that is deleted afterwards, never in the machine's own.
package testnet

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// insideEnv marks the re-executed test binary.
const insideEnv = "IPVLAN_BGP_TESTNET_INSIDE"

// Main runs the package's tests inside a fresh network namespace when the
// process is root; otherwise it runs them as they are (tests that need root
// skip through RequireRoot).
func Main(m *testing.M) {
	if os.Geteuid() != 0 || os.Getenv(insideEnv) != "" {
		if os.Getenv(insideEnv) != "" {
			_ = exec.Command("ip", "link", "set", "lo", "up").Run()
		}
		os.Exit(m.Run())
	}
	name := fmt.Sprintf("tn-main-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "testnet: ip netns add %s: %v: %s\n", name, err, out)
		os.Exit(1)
	}
	args := append([]string{"netns", "exec", name, os.Args[0]}, os.Args[1:]...)
	cmd := exec.Command("ip", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), insideEnv+"="+name)
	err := cmd.Run()
	killNamespacePids(name)
	_ = exec.Command("ip", "netns", "del", name).Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		os.Exit(exit.ExitCode())
	case err != nil:
		fmt.Fprintf(os.Stderr, "testnet: run tests in %s: %v\n", name, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// RequireEnv, set to 1 (as `make unit` and CI do), turns the skips below
// into failures: there a missing root or binary means the test did not run,
// which must not pass for a test that passed.
const RequireEnv = "IPVLAN_BGP_REQUIRE_ALL"

// RequireRoot skips a test that needs to create namespaces and links.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skip(t, "needs root to create network namespaces")
	}
}

// RequireBinary skips a test whose peer software is not installed.
func RequireBinary(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		skip(t, fmt.Sprintf("%s is not installed: %v", path, err))
	}
}

func skip(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s (%s=1: a skip would hide a test that did not run)", why, RequireEnv)
	}
	t.Skip(why)
}

var nsCounter atomic.Int64

// NS is a network namespace made for one test. The zero-name NS (Host) is
// the namespace the test process runs in.
type NS struct {
	Name string
}

// Host is the test process's own namespace (inside Main, a throwaway one).
var Host = &NS{}

// NewNS creates a namespace named after prefix, with lo up, deleted (and its
// processes killed) when the test ends.
func NewNS(t testing.TB, prefix string) *NS {
	t.Helper()
	RequireRoot(t)
	name := fmt.Sprintf("tn-%s-%d-%d", prefix, os.Getpid(), nsCounter.Add(1))
	if len(name) > 40 {
		name = name[:40]
	}
	mustRun(t, "ip", "netns", "add", name)
	ns := &NS{Name: name}
	t.Cleanup(func() {
		killNamespacePids(name)
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	ns.Exec(t, "ip", "link", "set", "lo", "up")
	return ns
}

// command builds a command that runs inside the namespace.
func (n *NS) command(args ...string) *exec.Cmd {
	if n == nil || n.Name == "" {
		return exec.Command(args[0], args[1:]...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

// Try runs a command in the namespace and returns its combined output.
func (n *NS) Try(args ...string) (string, error) {
	var out bytes.Buffer
	cmd := n.command(args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Exec runs a command in the namespace and fails the test if it fails.
func (n *NS) Exec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Try(args...)
	if err != nil {
		t.Fatalf("in netns %q: %v", n.Name, err)
	}
	return out
}

// Veth joins two namespaces with a veth pair named aName (in a) and bName
// (in b), both up. A nil or Host side is the test's own namespace.
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) {
	t.Helper()
	Host.Exec(t, "ip", "link", "add", aName, "type", "veth", "peer", "name", bName)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", aName).Run() })
	for _, end := range []struct {
		ns   *NS
		name string
	}{{a, aName}, {b, bName}} {
		if end.ns != nil && end.ns.Name != "" {
			Host.Exec(t, "ip", "link", "set", end.name, "netns", end.ns.Name)
		}
		end.ns.Exec(t, "ip", "link", "set", end.name, "up")
	}
}

// AddAddr adds an address (CIDR) to a link in the namespace. IPv6 addresses
// are added without duplicate address detection so they are usable at once.
func (n *NS) AddAddr(t testing.TB, dev, cidr string) {
	t.Helper()
	args := []string{"ip", "addr", "add", cidr, "dev", dev}
	if strings.Contains(cidr, ":") {
		args = append(args, "nodad")
	}
	n.Exec(t, args...)
}

// WaitFor polls cond every 100 ms until it holds or timeout passes, then
// fails the test with what and cond's last explanation.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mustRun(t testing.TB, args ...string) {
	t.Helper()
	if _, err := Host.Try(args...); err != nil {
		t.Fatal(err)
	}
}

// killNamespacePids ends every process left in a namespace (routers started
// as daemons) so the namespace can really go away.
func killNamespacePids(name string) {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return
	}
	for _, pid := range strings.Fields(string(out)) {
		if pid == fmt.Sprint(os.Getpid()) {
			continue
		}
		_ = exec.Command("kill", "-9", pid).Run()
	}
}

// Blackhole makes the namespace drop every packet that comes in, goes out
// or passes through dev, while the link stays up: a silent failure, which
// no carrier loss reports and only the protocols' own timers find. The
// returned heal lifts it; the namespace's end lifts it too.
func (n *NS) Blackhole(t testing.TB, dev string) (heal func()) {
	t.Helper()
	RequireBinary(t, nftBin)
	table := "blackhole-" + dev
	rules := fmt.Sprintf(`table inet %[1]s {
	chain drop_in { type filter hook input priority -300; policy accept; iifname %[2]q drop; }
	chain drop_through { type filter hook forward priority -300; policy accept; iifname %[2]q drop; oifname %[2]q drop; }
	chain drop_out { type filter hook output priority -300; policy accept; oifname %[2]q drop; }
}
`, table, dev)
	cmd := n.command(nftBin, "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("in netns %q: nft: %v: %s", n.Name, err, out)
	}
	return func() {
		t.Helper()
		n.Exec(t, nftBin, "delete", "table", "inet", table)
	}
}
