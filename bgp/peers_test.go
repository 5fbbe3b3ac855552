package bgp

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

// TestAnnounceToBIRD: a numbered session with BIRD; the advert lands in
// BIRD's kernel and leaves on withdraw.
func TestAnnounceToBIRD(t *testing.T) {
	ns, hostIf, peerIf := link(t, "bird")
	testnet.Host.AddAddr(t, hostIf, "10.0.5.1/30")
	ns.AddAddr(t, peerIf, "10.0.5.2/30")
	bird := testnet.StartBIRD(t, ns, `
router id 10.0.5.2;
protocol device {}
protocol kernel { ipv4 { export all; }; }
protocol bgp host {
  local 10.0.5.2 as 65005;
  neighbor 10.0.5.1 as 64512;
  ipv4 { import all; export none; };
}
`)
	s := startSpeaker(t, testConfig(numbered("10.0.5.2", 65005)))
	testnet.WaitFor(t, 30*time.Second, "BIRD session Established", func() (bool, string) {
		out, _ := bird.Try("show protocols host")
		return strings.Contains(out, "Established"), out
	})
	s.Set("ep", []route.Advert{advert("10.5.0.1/32", "65000:5")})
	testnet.WaitFor(t, 10*time.Second, "10.5.0.1/32 in BIRD's kernel", func() (bool, string) {
		out := kernelRoute(ns, "10.5.0.1/32")
		return strings.Contains(out, "via 10.0.5.1"), out
	})
	if out := bird.Show(t, "show route 10.5.0.1/32 all"); !strings.Contains(out, "(65000,5)") {
		t.Errorf("BIRD's route lacks community (65000,5):\n%s", out)
	}
	s.Set("ep", nil)
	waitGone(t, ns, "10.5.0.1/32")
}

// TestUnnumberedFRR peers over IPv6 link-local only (no address on the
// link), like FRR's `neighbor IFACE interface`: FRR starts once our Router
// Advertisements arrive, and installs our IPv4 route via our link-local
// address (RFC 8950) and our IPv6 route too.
func TestUnnumberedFRR(t *testing.T) {
	ns, hostIf, peerIf := link(t, "unnum")
	testnet.StartFRR(t, ns, frrLeaf(65006, "10.0.6.2", ` neighbor `+peerIf+` interface remote-as external
 address-family ipv6 unicast
  neighbor `+peerIf+` activate
 exit-address-family`))
	n := Neighbor{Interface: hostIf, PeerSettings: PeerSettings{HoldTime: 9 * time.Second, Keepalive: 3 * time.Second,
		Families: []Family{IPv4Unicast, IPv6Unicast}}}
	s := startSpeaker(t, testConfig(n))
	s.Set("ep", []route.Advert{advert("10.6.0.1/32"), advert("fd00:6::1/128")})
	testnet.WaitFor(t, 60*time.Second, "10.6.0.1/32 via our link-local address in FRR's kernel", func() (bool, string) {
		out := kernelRoute(ns, "10.6.0.1/32")
		return strings.Contains(out, "via inet6 fe80::") && strings.Contains(out, peerIf), out
	})
	testnet.WaitFor(t, 10*time.Second, "fd00:6::1/128 in FRR's kernel", func() (bool, string) {
		out := kernelRoute(ns, "fd00:6::1/128")
		return strings.Contains(out, "via fe80::"), out
	})
	st, err := s.Status(context.Background())
	if err != nil || len(st.Peers) != 1 || st.Peers[0].State != "established" || st.Peers[0].Interface != hostIf {
		t.Fatalf("Status = %+v, %v; want one established unnumbered peer on %s", st, err, hostIf)
	}
}

// TestMD5WithFRR: a session protected by a TCP MD5 password comes up, and
// one with the wrong password does not.
func TestMD5WithFRR(t *testing.T) {
	ns, hostIf, peerIf := link(t, "md5")
	testnet.Host.AddAddr(t, hostIf, "10.0.7.1/30")
	ns.AddAddr(t, peerIf, "10.0.7.2/30")
	frr := testnet.StartFRR(t, ns, frrLeaf(65007, "10.0.7.2", ` neighbor 10.0.7.1 remote-as 64512
 neighbor 10.0.7.1 password s3cret-md5`))
	wrong := numbered("10.0.7.2", 65007)
	wrong.Password = "not-it"
	s := startSpeaker(t, testConfig(wrong))
	time.Sleep(6 * time.Second) // more than a connect retry
	if out := frr.Vtysh(t, "show bgp neighbor 10.0.7.1 json"); strings.Contains(out, `"bgpState":"Established"`) {
		t.Fatalf("session came up with the wrong MD5 password")
	}
	if err := s.Stop(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	right := numbered("10.0.7.2", 65007)
	right.Password = "s3cret-md5"
	startSpeaker(t, testConfig(right))
	waitEstablished(t, frr, "10.0.7.1")
}

// TestDynamicNeighbor: a BIRD peer connecting from a dynamic range is
// accepted with its peer group's settings.
func TestDynamicNeighbor(t *testing.T) {
	ns, hostIf, peerIf := link(t, "dyn")
	testnet.Host.AddAddr(t, hostIf, "10.0.8.1/24")
	ns.AddAddr(t, peerIf, "10.0.8.20/24")
	cfg := testConfig()
	cfg.ListenPort = 1790
	cfg.PeerGroups = []PeerGroup{{Name: "hosts", PeerSettings: PeerSettings{RemoteAS: 65008,
		HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, Families: []Family{IPv4Unicast}}}}
	cfg.DynamicNeighbors = []DynamicNeighbor{{Prefix: netip.MustParsePrefix("10.0.8.0/24"), PeerGroup: "hosts"}}
	s := startSpeaker(t, cfg)
	bird := testnet.StartBIRD(t, ns, `
router id 10.0.8.20;
protocol device {}
protocol bgp host {
  local 10.0.8.20 as 65008;
  neighbor 10.0.8.1 port 1790 as 64512;
  ipv4 { import all; export none; };
}
`)
	s.Set("ep", []route.Advert{advert("10.8.0.1/32")})
	testnet.WaitFor(t, 30*time.Second, "10.8.0.1/32 at BIRD", func() (bool, string) {
		out, _ := bird.Try("show route 10.8.0.1/32")
		return strings.Contains(out, "10.0.8.1"), out
	})
}
