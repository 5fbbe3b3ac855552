package bgp

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

// grPrefix is what the graceful restart tests announce.
var grPrefix = netip.MustParsePrefix("10.2.0.1/32")

// grFabric is one leaf and a speaker config peering with it.
type grFabric struct {
	ns     *testnet.NS
	cfg    config.Config
	routes routeEvents // the leaf's kernel route changes
	// up tells whether the leaf has its session with us established;
	// helping whether it holds our routes for a restart of ours (graceful
	// restart helper), not refreshed yet.
	up, helping func() (bool, string)
	// bfdDown, when the session runs BFD, tells whether the leaf's BFD
	// saw us go: a restart takes longer than BFD's detection time.
	bfdDown func() (bool, string)
}

func frrGRFabric(t *testing.T, name string, bfd bool) grFabric {
	ns, hostIf, peerIf := link(t, name)
	testnet.Host.AddAddr(t, hostIf, "10.0.2.1/30")
	ns.AddAddr(t, peerIf, "10.0.2.2/30")
	n := numbered("10.0.2.2", 65002)
	start, conf := testnet.StartFRR, " neighbor 10.0.2.1 remote-as 64512"
	if bfd {
		start, conf, n.BFD = testnet.StartFRRWithBFD, conf+"\n neighbor 10.0.2.1 bfd", fastBFD
	}
	frr := start(t, ns, frrLeaf(65002, "10.0.2.2", conf))
	f := grFabric{ns: ns, cfg: testConfig(n), routes: watchRoutes(t, ns),
		up: frrEstablished(frr, "10.0.2.1"), helping: frrStale(t, frr)}
	if bfd {
		// Up is the leaf's BFD session up too: FRR replaces its BFD session
		// when the BGP session first comes up, and GoBGP resets the session
		// for it (fabric.md), which is not the restart under test.
		bgpUp, bfdUp := f.up, frrBFD(frr)
		f.up = func() (bool, string) {
			ok, why := bgpUp()
			if !ok {
				return false, why
			}
			return bfdUp()
		}
		f.bfdDown = func() (bool, string) { ok, out := bfdUp(); return !ok, out }
	}
	return f
}

func frrUnnumberedGRFabric(t *testing.T) grFabric {
	ns, hostIf, peerIf := link(t, "grun")
	frr := testnet.StartFRR(t, ns, frrLeaf(65002, "10.0.2.2", " neighbor "+peerIf+" interface remote-as external"))
	n := config.Neighbor{Interface: hostIf, PeerSettings: config.PeerSettings{HoldTime: 9 * time.Second, Keepalive: 3 * time.Second}}
	return grFabric{ns: ns, cfg: testConfig(n), routes: watchRoutes(t, ns),
		up: frrEstablished(frr, peerIf), helping: frrStale(t, frr)}
}

// frrStale tells whether FRR's one path for grPrefix is stale: kept from a
// session that dropped, not yet refreshed.
func frrStale(t *testing.T, frr *testnet.FRR) func() (bool, string) {
	return func() (bool, string) {
		p := frrLookup(t, frr, grPrefix.String())
		return len(p.Paths) == 1 && p.Paths[0].Stale, fmt.Sprintf("%+v", p)
	}
}

func birdGRFabric(t *testing.T, name string, bfd bool) grFabric {
	ns, hostIf, peerIf := link(t, name)
	testnet.Host.AddAddr(t, hostIf, "10.0.2.1/30")
	ns.AddAddr(t, peerIf, "10.0.2.2/30")
	n := numbered("10.0.2.2", 65002)
	n.Families = nil
	bfdConf, bfdSession := "", ""
	if bfd {
		n.BFD = fastBFD
		bfdConf = `protocol bfd { interface "*" { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; }; }`
		bfdSession = "bfd on;"
	}
	bird := testnet.StartBIRD(t, ns, fmt.Sprintf(`router id 10.0.2.2;
protocol device {}
protocol kernel { ipv4 { export all; }; }
%s
protocol bgp host { local 10.0.2.2 as 65002; neighbor 10.0.2.1 as 64512; connect retry time 1; %s
  ipv4 { import all; export none; }; }
`, bfdConf, bfdSession))
	protocol := func() string { out, _ := bird.Try("show protocols all host"); return out }
	f := grFabric{ns: ns, cfg: testConfig(n), routes: watchRoutes(t, ns),
		up: func() (bool, string) {
			out := protocol()
			return strings.Contains(out, "Established"), out
		},
		helping: func() (bool, string) {
			out := protocol()
			return strings.Contains(out, "Neighbor graceful restart active"), out
		},
	}
	if bfd {
		f.bfdDown = func() (bool, string) {
			out, _ := bird.Try("show bfd sessions")
			return !strings.Contains(out, " Up "), out
		}
	}
	return f
}

// TestGracefulRestartKeepsRoutes stops a speaker gracefully (GoBGP's
// StopBgp keeping the peers' graceful restart) and starts a new one with the
// same config and routes: FRR and BIRD must keep the route in their kernel
// throughout: the leaf's kernel reports no withdrawal. FRR also with BFD on
// the session, its BFD down before we are back; BIRD 2.0 ends graceful
// restart when BFD goes down (`bfd on`), so it is not run with BFD here
// (TestBIRDEndsGracefulRestartOnBFDDown). A clean stop afterwards must
// withdraw the route, which shows the watch sees a loss.
func TestGracefulRestartKeepsRoutes(t *testing.T) {
	for name, fabric := range map[string]func(*testing.T) grFabric{
		"frr-numbered":   func(t *testing.T) grFabric { return frrGRFabric(t, "gr", false) },
		"frr-unnumbered": frrUnnumberedGRFabric,
		"frr-bfd":        func(t *testing.T) grFabric { return frrGRFabric(t, "grbfd", true) },
		"bird":           func(t *testing.T) grFabric { return birdGRFabric(t, "grbird", false) },
	} {
		t.Run(name, func(t *testing.T) { testGracefulRestart(t, fabric(t)) })
	}
}

func testGracefulRestart(t *testing.T, f grFabric) {
	adverts := []route.Advert{{Prefix: grPrefix}}
	first := NewSpeaker(f.cfg, Options{Log: speakerLog(t)})
	first.Set("ep", adverts)
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.routes.wait(t, grPrefix, true, 30*time.Second)
	testnet.WaitFor(t, 30*time.Second, "the leaf's session up", f.up)

	// Only what the restart does counts, not a reset while the session
	// settled (fabric.md: FRR replaces its BFD session once).
	_ = f.routes.deletions(grPrefix)
	stopped := time.Now()
	if err := first.Stop(context.Background(), true); err != nil {
		t.Fatalf("graceful Stop: %v", err)
	}
	testnet.WaitFor(t, 10*time.Second, "the leaf keeping our routes for our restart", f.helping)
	if f.bfdDown != nil {
		testnet.WaitFor(t, 10*time.Second, "the leaf's BFD down", f.bfdDown)
	}

	second := NewSpeaker(f.cfg, Options{Log: speakerLog(t)})
	second.Set("ep", adverts)
	if err := second.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Stop(context.Background(), false) })
	testnet.WaitFor(t, 60*time.Second, "the leaf's session up and our routes refreshed", func() (bool, string) {
		up, why := f.up()
		helping, how := f.helping()
		return up && !helping, why + how
	})
	t.Logf("restarted: the leaf's session up, our routes refreshed, %s after the stop", time.Since(stopped).Round(time.Millisecond))
	if n := f.routes.deletions(grPrefix); n > 0 {
		t.Fatalf("the leaf withdrew %s from its kernel %d times during the graceful restart", grPrefix, n)
	}

	if err := second.Stop(context.Background(), false); err != nil {
		t.Fatalf("clean Stop: %v", err)
	}
	f.routes.wait(t, grPrefix, false, 10*time.Second)
}

// TestBIRDEndsGracefulRestartOnBFDDown records how BIRD 2.0 treats BFD
// during our graceful restart: with `bfd on`, BFD going down while it keeps
// our routes for the restart ends the restart and withdraws them. The docs
// warn about it (reference.md, BGP_BFD); this test tells when a BIRD
// changes its mind.
func TestBIRDEndsGracefulRestartOnBFDDown(t *testing.T) {
	f := birdGRFabric(t, "grbirdbfd", true)
	first := NewSpeaker(f.cfg, Options{Log: speakerLog(t)})
	first.Set("ep", []route.Advert{{Prefix: grPrefix}})
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.routes.wait(t, grPrefix, true, 30*time.Second)
	testnet.WaitFor(t, 30*time.Second, "BIRD's session up", f.up)
	if err := first.Stop(context.Background(), true); err != nil {
		t.Fatalf("graceful Stop: %v", err)
	}
	testnet.WaitFor(t, 10*time.Second, "BIRD keeping our routes for our restart", f.helping)
	f.routes.wait(t, grPrefix, false, 10*time.Second)
}

// TestGracefulRestartOnlySessionFamilies: the graceful restart capability
// names only the families the session carries. On an IPv4 session to a
// leaf that would take IPv6 too, FRR sees it for IPv4 alone, and after a
// graceful restart it has our End-of-RIB within seconds: it never waits
// for one of a family we do not carry, until its stale-path timer (360 s).
// An unnumbered session carries, and names, both.
func TestGracefulRestartOnlySessionFamilies(t *testing.T) {
	t.Run("ipv4", func(t *testing.T) {
		ns, hostIf, peerIf := link(t, "grfam")
		testnet.Host.AddAddr(t, hostIf, "10.0.18.1/30")
		ns.AddAddr(t, peerIf, "10.0.18.2/30")
		frr := testnet.StartFRR(t, ns, frrLeaf(65018, "10.0.18.2", ` neighbor 10.0.18.1 remote-as 64512
 address-family ipv6 unicast
  neighbor 10.0.18.1 activate
 exit-address-family`))
		n := numbered("10.0.18.2", 65018)
		n.Families = nil // the session's own: IPv4
		testGRFamilies(t, frr, "10.0.18.1", testConfig(n), "ipv4Unicast")
	})
	t.Run("unnumbered", func(t *testing.T) {
		ns, hostIf, peerIf := link(t, "grfamun")
		frr := testnet.StartFRR(t, ns, frrLeaf(65018, "10.0.18.2", " neighbor "+peerIf+` interface remote-as external
 address-family ipv6 unicast
  neighbor `+peerIf+` activate
 exit-address-family`))
		n := config.Neighbor{Interface: hostIf, PeerSettings: config.PeerSettings{HoldTime: 9 * time.Second, Keepalive: 3 * time.Second}}
		testGRFamilies(t, frr, peerIf, testConfig(n), "ipv4Unicast", "ipv6Unicast")
	})
}

// frrGR is what tests read of FRR's view of a neighbour's graceful restart.
type frrGR struct {
	Capabilities struct {
		GR       string                     `json:"gracefulRestart"`
		Families map[string]json.RawMessage `json:"addressFamiliesByPeer"`
	} `json:"neighborCapabilities"`
	Info struct {
		EndOfRibRecv map[string]bool `json:"endOfRibRecv"`
	} `json:"gracefulRestartInfo"`
	State string `json:"bgpState"`
}

func frrNeighborGR(t *testing.T, frr *testnet.FRR, peer string) frrGR {
	t.Helper()
	var all map[string]frrGR
	frr.JSON(t, "show bgp neighbor "+peer+" json", &all)
	return all[peer]
}

func testGRFamilies(t *testing.T, frr *testnet.FRR, peer string, cfg config.Config, families ...string) {
	adverts := []route.Advert{{Prefix: grPrefix}}
	first := NewSpeaker(cfg, Options{Log: speakerLog(t)})
	first.Set("ep", adverts)
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, frr, peer)
	gr := frrNeighborGR(t, frr, peer)
	got := slices.Sorted(maps.Keys(gr.Capabilities.Families))
	if gr.Capabilities.GR != "advertisedAndReceived" || !slices.Equal(got, families) {
		t.Fatalf("FRR sees our graceful restart %q for %v; want it for %v", gr.Capabilities.GR, got, families)
	}
	if err := first.Stop(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	second := NewSpeaker(cfg, Options{Log: speakerLog(t)})
	second.Set("ep", adverts)
	if err := second.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Stop(context.Background(), false) })
	testnet.WaitFor(t, 20*time.Second, "FRR done with our restart: our End-of-RIB for every family, nothing stale", func() (bool, string) {
		gr := frrNeighborGR(t, frr, peer)
		for _, f := range families {
			if !gr.Info.EndOfRibRecv[f] {
				return false, fmt.Sprintf("%+v", gr)
			}
		}
		p := frrLookup(t, frr, grPrefix.String())
		return gr.State == "Established" && len(p.Paths) == 1 && !p.Paths[0].Stale, fmt.Sprintf("%+v %+v", gr, p)
	})
	t.Logf("FRR had our End-of-RIB for %v and no stale route %s after the stop", families, time.Since(stopped).Round(time.Millisecond))
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
