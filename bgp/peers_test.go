package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
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
	n := config.Neighbor{Interface: hostIf, PeerSettings: config.PeerSettings{HoldTime: 9 * time.Second, Keepalive: 3 * time.Second,
		Families: []config.Family{config.IPv4Unicast, config.IPv6Unicast}}}
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
	// FRR's kernel drops each of our SYNs for its wrong signature and
	// counts it: two drops are two connection attempts that failed.
	testnet.WaitFor(t, 30*time.Second, "two of our connection attempts refused for their MD5 signature", func() (bool, string) {
		n := tcpCounter(t, ns, "TCPMD5Failure")
		return n >= 2, fmt.Sprintf("TCPMD5Failure=%d", n)
	})
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

// tcpCounter reads one of the TcpExt counters of the namespace's kernel.
func tcpCounter(t *testing.T, ns *testnet.NS, name string) int {
	t.Helper()
	lines := strings.Split(ns.Exec(t, "cat", "/proc/net/netstat"), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) {
			continue
		}
		for j, n := range names {
			if n == name {
				v, err := strconv.Atoi(values[j])
				if err != nil {
					t.Fatalf("%s=%q: %v", name, values[j], err)
				}
				return v
			}
		}
	}
	t.Fatalf("no TcpExt counter %s in /proc/net/netstat", name)
	return 0
}

// TestDynamicNeighbor: a BIRD peer connecting from a dynamic range is
// accepted with its peer group's settings.
func TestDynamicNeighbor(t *testing.T) {
	ns, hostIf, peerIf := link(t, "dyn")
	testnet.Host.AddAddr(t, hostIf, "10.0.8.1/24")
	ns.AddAddr(t, peerIf, "10.0.8.20/24")
	cfg := testConfig()
	cfg.ListenPort = 1790
	cfg.PeerGroups = []config.PeerGroup{{Name: "hosts", PeerSettings: config.PeerSettings{RemoteAS: 65008,
		HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, Families: []config.Family{config.IPv4Unicast}}}}
	cfg.DynamicNeighbors = []config.DynamicNeighbor{{Prefix: netip.MustParsePrefix("10.0.8.0/24"), PeerGroup: "hosts"}}
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

// TestAnnounceIPv6ToFRR: an IPv6 prefix over a numbered IPv6 session lands
// in FRR's kernel via our global address on the link.
func TestAnnounceIPv6ToFRR(t *testing.T) {
	ns, hostIf, peerIf := link(t, "v6")
	testnet.Host.AddAddr(t, hostIf, "fd00:11::1/64")
	ns.AddAddr(t, peerIf, "fd00:11::2/64")
	frr := testnet.StartFRR(t, ns, frrLeaf(65011, "10.0.11.2", ` neighbor fd00:11::1 remote-as 64512
 address-family ipv6 unicast
  neighbor fd00:11::1 activate
 exit-address-family`))
	n := numbered("fd00:11::2", 65011)
	n.Families = nil // the session's own family
	s := startSpeaker(t, testConfig(n))
	waitEstablished(t, frr, "fd00:11::1")
	s.Set("ep", []route.Advert{advert("fd00:99::1/128", "65000:11")})
	testnet.WaitFor(t, 10*time.Second, "fd00:99::1/128 in FRR's kernel", func() (bool, string) {
		out := kernelRoute(ns, "fd00:99::1/128")
		return strings.Contains(out, "via fd00:11::1"), out
	})
	if p := frrLookup(t, frr, "fd00:99::1/128"); len(p.Paths) != 1 || p.Paths[0].Community.String != "65000:11" {
		t.Fatalf("FRR's path = %+v, want one with community 65000:11", p)
	}
}

func TestPeerConfig(t *testing.T) {
	s := NewSpeaker(testConfig(), Options{})
	v4 := numbered("10.0.0.1", 65001)
	v4.Families, v4.Password, v4.MultihopTTL, v4.MaxPrefixes = nil, "pw", 2, 100
	v6 := numbered("fd00::1", 65001)
	v6.Families = nil
	iface := config.Neighbor{Interface: "lo", PeerSettings: config.PeerSettings{HoldTime: 9 * time.Second, Keepalive: 3 * time.Second}}
	tests := []struct {
		n       config.Neighbor
		address string
		want    []string // families, in order
	}{
		{v4, "10.0.0.1", []string{"AFI_IP"}},
		{v6, "fd00::1", []string{"AFI_IP6"}},
		{iface, "fe80::1%lo", []string{"AFI_IP", "AFI_IP6"}},
		{numbered("10.0.0.2", 1), "10.0.0.2", []string{"AFI_IP", "AFI_IP6"}},
	}
	for _, tt := range tests {
		p := s.peerConfig(tt.n, tt.address, true)
		var got []string
		for _, af := range p.AfiSafis {
			got = append(got, af.Config.Family.Afi.String())
			if !af.MpGracefulRestart.Config.Enabled || af.PrefixLimits.MaxPrefixes != tt.n.MaxPrefixes {
				t.Errorf("%s: family %v lacks graceful restart or max-prefix %d", tt.n, af.Config.Family, tt.n.MaxPrefixes)
			}
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: families %v, want %v", tt.n, got, tt.want)
		}
		if p.Conf.NeighborAddress != tt.address || p.Conf.AuthPassword != string(tt.n.Password) ||
			!p.GracefulRestart.Enabled || !p.GracefulRestart.LocalRestarting || p.Timers.Config.HoldTime != uint64(tt.n.HoldTime.Seconds()) {
			t.Errorf("%s: peer config %+v", tt.n, p)
		}
		if (tt.n.Interface != "") != (p.Transport.GetLocalAddress() == "::") {
			t.Errorf("%s: transport local address %q; want :: exactly for unnumbered", tt.n, p.Transport.GetLocalAddress())
		}
		if p.EbgpMultihop.GetMultihopTtl() != uint32(tt.n.MultihopTTL) || p.EbgpMultihop.GetEnabled() != (tt.n.MultihopTTL > 0) {
			t.Errorf("%s: multihop %+v", tt.n, p.EbgpMultihop)
		}
	}
}
