package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

// speakerLog sends the speaker's logs to t.Log until the test ends (GoBGP's
// goroutines may log a little after Stop, when t.Log would panic).
func speakerLog(t testing.TB) *logrus.Entry {
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	l := logrus.New()
	l.SetOutput(w)
	l.SetLevel(logrus.DebugLevel)
	return logrus.NewEntry(l)
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

var linkCounter atomic.Int64

// link joins the test's namespace to a new peer namespace with a /30 (or
// IPv6 /64) numbered veth and returns the peer namespace, the host-side
// interface name and the peer-side name.
func link(t *testing.T, prefix string) (ns *testnet.NS, hostIf, peerIf string) {
	t.Helper()
	n := linkCounter.Add(1)
	ns = testnet.NewNS(t, prefix)
	hostIf, peerIf = fmt.Sprintf("h%d", n), fmt.Sprintf("p%d", n)
	testnet.Veth(t, testnet.Host, hostIf, ns, peerIf)
	return ns, hostIf, peerIf
}

// testConfig is a speaker config with fast timers, no listening (GoBGP
// connects out) and no API socket.
func testConfig(neighbors ...config.Neighbor) config.Config {
	return config.Config{
		ASN:             64512,
		RouterID:        netip.MustParseAddr("192.0.2.250"),
		Neighbors:       neighbors,
		GracefulRestart: config.GracefulRestart{Enabled: true, RestartTime: 120 * time.Second},
	}
}

func numbered(addr string, as uint32) config.Neighbor {
	return config.Neighbor{Address: netip.MustParseAddr(addr), PeerSettings: config.PeerSettings{
		RemoteAS: as, HoldTime: 9 * time.Second, Keepalive: 3 * time.Second,
		Families: []config.Family{config.IPv4Unicast, config.IPv6Unicast},
	}}
}

// startSpeaker starts a speaker and stops it (with Cease) when the test ends.
func startSpeaker(t *testing.T, cfg config.Config) *Speaker {
	t.Helper()
	s := NewSpeaker(cfg, Options{Log: speakerLog(t)})
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background(), false) })
	return s
}

func advert(prefix string, communities ...string) route.Advert {
	a := route.Advert{Prefix: netip.MustParsePrefix(prefix)}
	for _, c := range communities {
		if strings.Count(c, ":") == 2 {
			a.LargeCommunities = append(a.LargeCommunities, c)
		} else {
			a.Communities = append(a.Communities, c)
		}
	}
	return a
}

// frrLeaf is the bgpd.conf of a lab leaf: eBGP without policies, ECMP on.
func frrLeaf(asn uint32, routerID string, body string) string {
	return fmt.Sprintf(`
router bgp %d
 bgp router-id %s
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp bestpath as-path multipath-relax
%s
`, asn, routerID, body)
}

// frrPath is what tests read from `show bgp ... PREFIX json`.
type frrPath struct {
	Paths []struct {
		Nexthops []struct {
			IP  string `json:"ip"`
			Afi string `json:"afi"`
		} `json:"nexthops"`
		Community      struct{ String string } `json:"community"`
		LargeCommunity struct{ String string } `json:"largeCommunity"`
		Stale          bool                    `json:"stale"`
	} `json:"paths"`
}

func frrLookup(t *testing.T, f *testnet.FRR, prefix string) frrPath {
	t.Helper()
	afi := "ipv4"
	if strings.Contains(prefix, ":") {
		afi = "ipv6"
	}
	var p frrPath
	f.JSON(t, fmt.Sprintf("show bgp %s unicast %s json", afi, prefix), &p)
	return p
}

// waitEstablished waits for FRR to report its session with peer up.
func waitEstablished(t *testing.T, f *testnet.FRR, peer string) {
	t.Helper()
	testnet.WaitFor(t, 30*time.Second, "FRR session with "+peer, func() (bool, string) {
		out, err := f.Try("show bgp neighbor " + peer + " json")
		return err == nil && strings.Contains(out, `"bgpState":"Established"`), out
	})
}

// kernelRoute returns `ip route show PREFIX` in ns.
func kernelRoute(ns *testnet.NS, prefix string) string {
	args := []string{"ip", "route", "show", prefix}
	if strings.Contains(prefix, ":") {
		args = []string{"ip", "-6", "route", "show", prefix}
	}
	out, _ := ns.Try(args...)
	return strings.TrimSpace(out)
}

// goBuild builds pkg, a package of this module or a tool of its go.mod
// (the gobgp CLI, gobgpd), into dir and returns the binary, static as the
// plugin ships. It builds offline, as the test's namespace has no network:
// the modules come from the module cache, which `go mod download` fills
// (`make unit` runs it). Failing to build fails the test, so a test that
// could not run never passes as skipped.
func goBuild(t testing.TB, dir, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, path.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOPROXY=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s offline (run `go mod download` once with network): %v\n%s", pkg, err, out)
	}
	return bin
}

// routeEvents are the route changes of a namespace's kernel.
type routeEvents chan netlink.RouteUpdate

// watchRoutes follows ns's kernel route changes until the test ends.
func watchRoutes(t testing.TB, ns *testnet.NS) routeEvents {
	t.Helper()
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	events := make(routeEvents, 65536)
	done := make(chan struct{})
	t.Cleanup(func() { close(done); _ = h.Close() })
	if err := netlink.RouteSubscribeWithOptions(events, done, netlink.RouteSubscribeOptions{Namespace: &h}); err != nil {
		t.Fatal(err)
	}
	return events
}

// wait waits for prefix to be added (or deleted) and returns when that was
// seen.
func (e routeEvents) wait(t testing.TB, prefix netip.Prefix, added bool, timeout time.Duration) time.Time {
	t.Helper()
	want := uint16(unix.RTM_DELROUTE)
	if added {
		want = unix.RTM_NEWROUTE
	}
	deadline := time.After(timeout)
	for {
		select {
		case u := <-e:
			if u.Type == want && u.Dst != nil && u.Dst.String() == prefix.String() {
				return time.Now()
			}
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s (added=%v) in the kernel", timeout, prefix, added)
		}
	}
}

// deletions drains the changes seen so far and counts the deletions of
// prefix among them.
func (e routeEvents) deletions(prefix netip.Prefix) int {
	n := 0
	for {
		select {
		case u := <-e:
			if u.Type == unix.RTM_DELROUTE && u.Dst != nil && u.Dst.String() == prefix.String() {
				n++
			}
		default:
			return n
		}
	}
}
