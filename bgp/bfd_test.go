package bgp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

// fastBFD is FRR's and BIRD's default: a peer silent for 0.9 s is down.
var fastBFD = config.BFD{Enabled: true, MinRx: 300 * time.Millisecond, MinTx: 300 * time.Millisecond, Multiplier: 3}

// bfdDetect is how soon a session must be down after its link went silent
// with fastBFD: the 0.9 s of BFD's detection time and some slack for the
// session to be torn down, far below the 30 s hold time the tests set.
const bfdDetect = 1500 * time.Millisecond

// bfdHold is the hold time of the tests' sessions: what a silent link
// would cost without BFD.
const bfdHold = 30 * time.Second

// bfdFabric is a leaf in a namespace, peering with the test's speaker over
// one link that the test can make silent.
type bfdFabric struct {
	ns     *testnet.NS
	leafIf string // the leaf's end of the link
	routes routeEvents
	// established tells whether the leaf sees its session with us up.
	established func() (bool, string)
	// bfdUp tells whether the leaf sees its BFD session with us up.
	bfdUp func() (bool, string)
}

// TestBFDFailover: with BFD (300 ms x 3) on both ends, a session whose link
// drops every packet while staying up goes down within about a second on
// both sides, far below its 30 s hold time: our speaker drops the leaf's
// routes, and the leaf withdraws ours from its kernel. When the link passes
// packets again, BFD and the session come back and the route returns. Run
// against FRR's bfdd (numbered and unnumbered, the neighbour configured
// with BFD) and BIRD's bfd protocol (as a dynamic neighbour, BFD from the
// peer group).
func TestBFDFailover(t *testing.T) {
	for name, fabric := range map[string]func(*testing.T) (config.Config, bfdFabric){
		"frr-numbered":    frrBFDNumbered,
		"frr-unnumbered":  frrBFDUnnumbered,
		"bird-peer-group": birdBFDDynamic,
	} {
		t.Run(name, func(t *testing.T) { testBFDFailover(t, fabric) })
	}
}

func testBFDFailover(t *testing.T, fabric func(*testing.T) (config.Config, bfdFabric)) {
	cfg, f := fabric(t)
	s := NewSpeaker(cfg, Options{Log: speakerLog(t)})
	prefix := netip.MustParsePrefix("10.15.0.1/32")
	s.Set("ep", []route.Advert{{Prefix: prefix}})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background(), false) })
	waitBFD(t, s, f, time.Now())
	f.routes.wait(t, prefix, true, 30*time.Second)

	downs := watchSessionsDown(t, s)
	failed := time.Now()
	heal := f.ns.Blackhole(t, f.leafIf)
	var ours time.Time
	select {
	case ours = <-downs:
	case <-time.After(bfdHold):
		t.Fatalf("our session stayed up for the hold time (%s) after its link went silent", bfdHold)
	}
	theirs := f.routes.wait(t, prefix, false, bfdHold)
	t.Logf("link silent: our session down after %s, our route out of the leaf's kernel after %s",
		ours.Sub(failed).Round(time.Millisecond), theirs.Sub(failed).Round(time.Millisecond))
	if ours.Sub(failed) > bfdDetect || theirs.Sub(failed) > bfdDetect {
		t.Errorf("BFD took longer than %s to take the session down (ours %s, the leaf's %s)",
			bfdDetect, ours.Sub(failed), theirs.Sub(failed))
	}
	testnet.WaitFor(t, 5*time.Second, "our status showing the session and BFD down", func() (bool, string) {
		st := onlyPeer(t, s)
		return st.BFD != BFDUp && st.State != "established", fmt.Sprintf("session %s, BFD %q", st.State, st.BFD)
	})

	healed := time.Now()
	heal()
	waitBFD(t, s, f, healed)
	back := f.routes.wait(t, prefix, true, 60*time.Second)
	t.Logf("link healed: BFD and the session up, our route back in the leaf's kernel after %s", back.Sub(healed).Round(time.Millisecond))
}

// waitBFD waits for the session and its BFD to be up on both ends.
func waitBFD(t *testing.T, s *Speaker, f bfdFabric, since time.Time) {
	t.Helper()
	testnet.WaitFor(t, 60*time.Second, "BFD and the session up on both ends", func() (bool, string) {
		st := onlyPeer(t, s)
		leafUp, leafState := f.established()
		leafBFD, leafBFDState := f.bfdUp()
		return st.State == "established" && st.BFD == BFDUp && leafUp && leafBFD,
			fmt.Sprintf("ours: %s, BFD %q; leaf: %s; leaf's BFD: %s", st.State, st.BFD, leafState, leafBFDState)
	})
	t.Logf("BFD and the session up on both ends %s after the start", time.Since(since).Round(time.Millisecond))
}

// onlyPeer is the status of the speaker's only peer.
func onlyPeer(t *testing.T, s *Speaker) PeerStatus {
	t.Helper()
	st, err := s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Peers) != 1 {
		return PeerStatus{State: fmt.Sprintf("%d peers", len(st.Peers))}
	}
	return st.Peers[0]
}

// watchSessionsDown reports the moments a session of s leaves Established,
// from GoBGP's own peer events.
func watchSessionsDown(t *testing.T, s *Speaker) <-chan time.Time {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	downs := make(chan time.Time, 16)
	var mu sync.Mutex
	up := map[netip.Addr]bool{}
	err := s.server.WatchEvent(ctx, server.WatchEventMessageCallbacks{OnPeerUpdate: func(e *apiutil.WatchEventMessage_PeerEvent, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		peer, established := e.Peer.State.NeighborAddress, e.Peer.State.SessionState == bgppkt.BGP_FSM_ESTABLISHED
		if up[peer] && !established {
			downs <- at
		}
		up[peer] = established || (up[peer] && e.Type != apiutil.PEER_EVENT_STATE)
	}}, server.WatchPeer())
	if err != nil {
		t.Fatal(err)
	}
	// The watch reports changes only: a session already up counts as up.
	for _, p := range mustStatus(t, s).Peers {
		if a, err := netip.ParseAddr(p.Address); err == nil && p.State == "established" {
			mu.Lock()
			up[a] = true
			mu.Unlock()
		}
	}
	return downs
}

func mustStatus(t *testing.T, s *Speaker) Status {
	t.Helper()
	st, err := s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// frrBFD reads FRR's view of its only BFD session.
func frrBFD(f *testnet.FRR) func() (bool, string) {
	return func() (bool, string) {
		out, err := f.Try("show bfd peers json")
		if err != nil {
			return false, err.Error()
		}
		var peers []struct {
			Peer   string `json:"peer"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal([]byte(out), &peers); err != nil || len(peers) != 1 {
			return false, out
		}
		return peers[0].Status == "up", out
	}
}

func frrEstablished(f *testnet.FRR, peer string) func() (bool, string) {
	return func() (bool, string) {
		out, err := f.Try("show bgp neighbor " + peer + " json")
		return err == nil && strings.Contains(out, `"bgpState":"Established"`), "FRR's session not Established"
	}
}

// bfdNeighbor is a neighbour with BFD and a long hold time, so only BFD
// can take its session down fast.
func bfdNeighbor(n config.Neighbor) config.Neighbor {
	n.HoldTime, n.Keepalive, n.BFD = bfdHold, bfdHold/3, fastBFD
	return n
}

func frrBFDNumbered(t *testing.T) (config.Config, bfdFabric) {
	ns, hostIf, peerIf := link(t, "bfdfrr")
	testnet.Host.AddAddr(t, hostIf, "10.0.15.1/30")
	ns.AddAddr(t, peerIf, "10.0.15.2/30")
	frr := testnet.StartFRRWithBFD(t, ns, frrLeaf(65015, "10.0.15.2", ` neighbor 10.0.15.1 remote-as 64512
 neighbor 10.0.15.1 timers 10 30
 neighbor 10.0.15.1 bfd`))
	return testConfig(bfdNeighbor(numbered("10.0.15.2", 65015))), bfdFabric{
		ns: ns, leafIf: peerIf, routes: watchRoutes(t, ns),
		established: frrEstablished(frr, "10.0.15.1"), bfdUp: frrBFD(frr),
	}
}

func frrBFDUnnumbered(t *testing.T) (config.Config, bfdFabric) {
	ns, hostIf, peerIf := link(t, "bfdun")
	frr := testnet.StartFRRWithBFD(t, ns, frrLeaf(65015, "10.0.15.2", ` neighbor `+peerIf+` interface remote-as external
 neighbor `+peerIf+` timers 10 30
 neighbor `+peerIf+` bfd`))
	n := config.Neighbor{Interface: hostIf, PeerSettings: config.PeerSettings{Families: []config.Family{config.IPv4Unicast}}}
	return testConfig(bfdNeighbor(n)), bfdFabric{
		ns: ns, leafIf: peerIf, routes: watchRoutes(t, ns),
		established: frrEstablished(frr, peerIf), bfdUp: frrBFD(frr),
	}
}

// birdBFDDynamic has BIRD connect to us as a dynamic neighbour, so its BFD
// comes from the peer group's settings.
func birdBFDDynamic(t *testing.T) (config.Config, bfdFabric) {
	ns, hostIf, peerIf := link(t, "bfdbird")
	testnet.Host.AddAddr(t, hostIf, "10.0.16.1/24")
	ns.AddAddr(t, peerIf, "10.0.16.20/24")
	cfg := testConfig()
	cfg.ListenPort = 1790
	cfg.PeerGroups = []config.PeerGroup{{Name: "hosts", PeerSettings: config.PeerSettings{RemoteAS: 65016,
		HoldTime: bfdHold, Keepalive: bfdHold / 3, Families: []config.Family{config.IPv4Unicast}, BFD: fastBFD}}}
	cfg.DynamicNeighbors = []config.DynamicNeighbor{{Prefix: netip.MustParsePrefix("10.0.16.0/24"), PeerGroup: "hosts"}}
	bird := testnet.StartBIRD(t, ns, `
router id 10.0.16.20;
protocol device {}
protocol kernel { ipv4 { export all; }; }
protocol bfd { interface "*" { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; }; }
protocol bgp host {
  local 10.0.16.20 as 65016;
  neighbor 10.0.16.1 port 1790 as 64512;
  hold time 30; keepalive time 10; connect retry time 1;
  error wait time 1, 10; # after BFD took the session down, BIRD waits 60 s by default
  bfd on;
  ipv4 { import all; export none; };
}
`)
	return cfg, bfdFabric{
		ns: ns, leafIf: peerIf, routes: watchRoutes(t, ns),
		established: func() (bool, string) {
			out, _ := bird.Try("show protocols host")
			return strings.Contains(out, "Established"), out
		},
		bfdUp: func() (bool, string) {
			out, _ := bird.Try("show bfd sessions")
			return strings.Contains(out, "10.0.16.1") && strings.Contains(out, " Up "), out
		},
	}
}

// TestBFDOnOurSideOnly: with BFD on for a neighbour whose leaf runs none,
// BFD never comes up and the session lives on its hold time alone: up, and
// shown with BFD down.
func TestBFDOnOurSideOnly(t *testing.T) {
	ns, hostIf, peerIf := link(t, "bfdone")
	testnet.Host.AddAddr(t, hostIf, "10.0.17.1/30")
	ns.AddAddr(t, peerIf, "10.0.17.2/30")
	frr := testnet.StartFRR(t, ns, frrLeaf(65017, "10.0.17.2", " neighbor 10.0.17.1 remote-as 64512"))
	s := startSpeaker(t, testConfig(bfdNeighbor(numbered("10.0.17.2", 65017))))
	waitEstablished(t, frr, "10.0.17.1")
	// Ten of our BFD packets (3 s) is well past a detection time: a BFD
	// that could take the session down would have.
	testnet.WaitFor(t, 30*time.Second, "ten BFD packets sent", func() (bool, string) {
		sent := uint64(0)
		err := s.server.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
			sent = p.GetState().GetBfdState().GetBfdAsync().GetTransmittedPackets()
		})
		return err == nil && sent >= 10, fmt.Sprintf("%d sent, %v", sent, err)
	})
	if st := onlyPeer(t, s); st.State != "established" || st.BFD != BFDDown {
		t.Fatalf("our status: session %s, BFD %q; want established with BFD down", st.State, st.BFD)
	}
}
