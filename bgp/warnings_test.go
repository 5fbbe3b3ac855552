package bgp

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

// statusWarnings is the speaker's Status warnings, joined.
func statusWarnings(t *testing.T, s *Speaker) string {
	t.Helper()
	st, err := s.Status(context.Background())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return strings.Join(st.Warnings, "\n")
}

// TestLateInterface: an INTERFACE:AS neighbour whose interface does not
// exist when the speaker starts (a bond or VLAN that comes up later) is
// accepted, BGP runs, Status warns that the interface is missing, and the
// session comes up once the interface appears, the warning gone.
func TestLateInterface(t *testing.T) {
	ns := testnet.NewNS(t, "late")
	hostIf, peerIf := fmt.Sprintf("late%d", linkCounter.Add(1)), "uplink"
	// Both ends start in the leaf's namespace: this host has no hostIf.
	ns.Exec(t, "ip", "link", "add", hostIf, "type", "veth", "peer", "name", peerIf)
	ns.Exec(t, "ip", "link", "set", peerIf, "up")
	t.Cleanup(func() { _, _ = testnet.Host.Try("ip", "link", "del", hostIf) })
	frr := testnet.StartFRR(t, ns, frrLeaf(65008, "10.0.8.2", ` neighbor `+peerIf+` interface remote-as external`))

	neighbors, err := config.ParseNeighbors(hostIf+":65008", config.PeerSettings{HoldTime: 9 * time.Second, Keepalive: 3 * time.Second}, 64512)
	if err != nil {
		t.Fatalf("ParseNeighbors refused a neighbour whose interface does not exist yet: %v", err)
	}
	s := startSpeaker(t, testConfig(neighbors...))
	s.Set("ep", []route.Advert{advert("10.8.0.1/32")})
	testnet.WaitFor(t, 10*time.Second, "a warning naming "+hostIf, func() (bool, string) {
		w := statusWarnings(t, s)
		return strings.Contains(w, "no interface "+hostIf+" yet"), w
	})
	if st, _ := s.Status(context.Background()); !st.Running || st.LastError != "" {
		t.Fatalf("Status = %+v; want BGP running without an error while the interface is missing", st)
	}

	ns.Exec(t, "ip", "link", "set", hostIf, "netns", fmt.Sprint(os.Getpid()))
	testnet.Host.Exec(t, "ip", "link", "set", hostIf, "up")
	waitEstablished(t, frr, peerIf)
	testnet.WaitFor(t, 30*time.Second, "10.8.0.1/32 in the leaf's kernel", func() (bool, string) {
		out := kernelRoute(ns, "10.8.0.1/32")
		return strings.Contains(out, peerIf), out
	})
	if w := statusWarnings(t, s); w != "" {
		t.Fatalf("warnings after the interface appeared: %s", w)
	}
}

// TestASLoopWarning: routes a peer sends with this host's AS in their AS
// path are dropped by GoBGP as loops; the speaker warns of another host in
// its AS when such a route is not one of its own prefixes (a dual-homed
// host hears its own back from the other leaf: no warning), and the
// warning clears once the route is gone. The leaf prepends our AS 64512 to
// what it sends, as if a host in AS 64512 had announced it.
func TestASLoopWarning(t *testing.T) {
	saved := asLoopEvery
	asLoopEvery = time.Hour // the test looks itself, with checkASLoops
	t.Cleanup(func() { asLoopEvery = saved })
	ns, hostIf, peerIf := link(t, "asloop")
	testnet.Host.AddAddr(t, hostIf, "10.0.9.1/30")
	ns.AddAddr(t, peerIf, "10.0.9.2/30")
	frr := testnet.StartFRR(t, ns, frrLeaf(65009, "10.0.9.2", ` neighbor 10.0.9.1 remote-as 64512
 address-family ipv4 unicast
  network 10.9.1.1/32
  neighbor 10.0.9.1 route-map OTHER-HOST out
 exit-address-family
route-map OTHER-HOST permit 10
 set as-path prepend 64512`))
	s := startSpeaker(t, testConfig(numbered("10.0.9.2", 65009)))
	// 10.9.1.1/32 is ours as well: the leaf's copy carries our AS.
	s.Set("ep", []route.Advert{advert("10.9.1.1/32")})
	waitEstablished(t, frr, "10.0.9.1")
	looked := map[string][2]uint64{}
	rejected := func() (bool, string) {
		st, err := s.Status(context.Background())
		if err != nil || len(st.Peers) != 1 {
			return false, fmt.Sprintf("%+v, %v", st, err)
		}
		p := st.Peers[0]
		return p.Received > p.Accepted, fmt.Sprintf("received %d, accepted %d", p.Received, p.Accepted)
	}
	testnet.WaitFor(t, 30*time.Second, "the leaf's 10.9.1.1/32 received and dropped", rejected)
	s.checkASLoops(context.Background(), looked)
	if w := statusWarnings(t, s); w != "" {
		t.Fatalf("a warning for our own prefix coming back: %s", w)
	}

	frr.Vtysh(t, "configure terminal", "router bgp 65009", "address-family ipv4 unicast", "network 10.9.2.0/24")
	want := "peer 10.0.9.2 sends routes with this host's AS 64512 in their AS path (10.9.2.0/24, AS path 65009 64512)"
	testnet.WaitFor(t, 30*time.Second, "a warning for 10.9.2.0/24", func() (bool, string) {
		s.checkASLoops(context.Background(), looked)
		w := statusWarnings(t, s)
		return strings.Contains(w, want) && strings.Contains(w, "give every host its own BGP_ASN"), w
	})

	frr.Vtysh(t, "configure terminal", "router bgp 65009", "address-family ipv4 unicast", "no network 10.9.2.0/24")
	testnet.WaitFor(t, 30*time.Second, "the warning gone with 10.9.2.0/24", func() (bool, string) {
		s.checkASLoops(context.Background(), looked)
		w := statusWarnings(t, s)
		return w == "", w
	})
}
