package bgp

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

// grFabric is one FRR leaf and a speaker config peering with it.
type grFabric struct {
	ns   *testnet.NS
	frr  *testnet.FRR
	cfg  config.Config
	peer string // how FRR names our session
	via  string // what FRR's kernel route through us shows
}

func numberedFabric(t *testing.T) grFabric {
	ns, hostIf, peerIf := link(t, "gr")
	testnet.Host.AddAddr(t, hostIf, "10.0.2.1/30")
	ns.AddAddr(t, peerIf, "10.0.2.2/30")
	frr := testnet.StartFRR(t, ns, frrLeaf(65002, "10.0.2.2", " neighbor 10.0.2.1 remote-as 64512"))
	return grFabric{ns: ns, frr: frr, cfg: testConfig(numbered("10.0.2.2", 65002)), peer: "10.0.2.1", via: "via 10.0.2.1"}
}

func unnumberedFabric(t *testing.T) grFabric {
	ns, hostIf, peerIf := link(t, "grun")
	frr := testnet.StartFRR(t, ns, frrLeaf(65002, "10.0.2.2", " neighbor "+peerIf+" interface remote-as external"))
	n := config.Neighbor{Interface: hostIf, PeerSettings: config.PeerSettings{HoldTime: 9 * time.Second, Keepalive: 3 * time.Second}}
	return grFabric{ns: ns, frr: frr, cfg: testConfig(n), peer: peerIf, via: "via inet6 fe80::"}
}

// TestGracefulRestartKeepsRoutes stops a speaker without Cease and starts a
// new one with the same config and routes: FRR must keep the route in its
// RIB and kernel throughout (polled every 100 ms). A clean stop afterwards
// must withdraw it, which shows the poll can see a loss.
func TestGracefulRestartKeepsRoutes(t *testing.T) {
	for name, fabric := range map[string]func(*testing.T) grFabric{"numbered": numberedFabric, "unnumbered": unnumberedFabric} {
		t.Run(name, func(t *testing.T) { testGracefulRestart(t, fabric(t)) })
	}
}

func testGracefulRestart(t *testing.T, f grFabric) {
	const prefix = "10.2.0.1/32"
	adverts := []route.Advert{advert(prefix)}
	first := NewSpeaker(f.cfg, Options{Log: speakerLog(t)})
	first.Set("ep", adverts)
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	testnet.WaitFor(t, 30*time.Second, prefix+" in FRR's kernel", func() (bool, string) {
		out := kernelRoute(f.ns, prefix)
		return strings.Contains(out, f.via), out
	})

	stopPoll := pollRoute(t, f.frr, f.ns, prefix)
	if err := first.Stop(context.Background(), true); err != nil {
		t.Fatalf("graceful Stop: %v", err)
	}
	waitStale(t, f.frr, prefix, true)

	second := NewSpeaker(f.cfg, Options{Log: speakerLog(t)})
	second.Set("ep", adverts)
	if err := second.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Stop(context.Background(), false) })
	waitEstablished(t, f.frr, f.peer)
	waitStale(t, f.frr, prefix, false)
	if misses := stopPoll(); len(misses) > 0 {
		t.Fatalf("FRR lost the route during the graceful restart: %s", strings.Join(misses, "; "))
	}

	if err := second.Stop(context.Background(), false); err != nil {
		t.Fatalf("clean Stop: %v", err)
	}
	waitGone(t, f.ns, prefix)
}

// waitStale waits for FRR's one path for prefix to be (or stop being)
// stale: kept from a session that dropped, not yet refreshed.
func waitStale(t *testing.T, frr *testnet.FRR, prefix string, stale bool) {
	t.Helper()
	testnet.WaitFor(t, 10*time.Second, fmt.Sprintf("%s stale=%v at FRR", prefix, stale), func() (bool, string) {
		p := frrLookup(t, frr, prefix)
		return len(p.Paths) == 1 && p.Paths[0].Stale == stale, frr.Vtysh(t, "show bgp ipv4 unicast "+prefix)
	})
}

// pollRoute checks FRR's RIB and kernel for prefix every 100 ms until the
// returned stop is called, which reports every moment it was missing.
func pollRoute(t *testing.T, frr *testnet.FRR, ns *testnet.NS, prefix string) (stop func() []string) {
	done := make(chan struct{})
	var mu sync.Mutex
	var misses []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			rib, _ := frr.Try("show bgp ipv4 unicast " + prefix + " json")
			kernel := kernelRoute(ns, prefix)
			if !strings.Contains(rib, `"paths"`) || kernel == "" {
				mu.Lock()
				misses = append(misses, time.Now().Format("15:04:05.000")+" rib="+rib+" kernel="+kernel)
				mu.Unlock()
			}
		}
	}()
	return func() []string {
		close(done)
		wg.Wait()
		return misses
	}
}

// TestStartAgainAfterStop: the same Speaker stopped cleanly and started
// again re-announces what it holds (its record of GoBGP's RIB starts over).
func TestStartAgainAfterStop(t *testing.T) {
	ns, hostIf, peerIf := link(t, "again")
	testnet.Host.AddAddr(t, hostIf, "10.0.13.1/30")
	ns.AddAddr(t, peerIf, "10.0.13.2/30")
	testnet.StartFRR(t, ns, frrLeaf(65013, "10.0.13.2", " neighbor 10.0.13.1 remote-as 64512"))
	s := startSpeaker(t, testConfig(numbered("10.0.13.2", 65013)))
	s.Set("ep", []route.Advert{advert("10.13.0.1/32")})
	waitVia := func() {
		testnet.WaitFor(t, 30*time.Second, "10.13.0.1/32 in FRR's kernel", func() (bool, string) {
			out := kernelRoute(ns, "10.13.0.1/32")
			return strings.Contains(out, "via 10.0.13.1"), out
		})
	}
	waitVia()
	if err := s.Stop(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	waitGone(t, ns, "10.13.0.1/32")
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitVia()
}
