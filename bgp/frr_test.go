package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

// TestAnnounceToFRR: a numbered IPv4 session with FRR comes up; a Set advert
// reaches FRR's RIB and kernel with our address as next hop and its
// communities; withdrawing one owner leaves the other's routes; a prefix two
// owners share stays until both withdraw.
func TestAnnounceToFRR(t *testing.T) {
	ns, hostIf, peerIf := link(t, "frr")
	testnet.Host.AddAddr(t, hostIf, "10.0.1.1/30")
	ns.AddAddr(t, peerIf, "10.0.1.2/30")
	frr := testnet.StartFRR(t, ns, frrLeaf(65001, "10.0.1.2", " neighbor 10.0.1.1 remote-as 64512"))
	s := startSpeaker(t, testConfig(numbered("10.0.1.2", 65001)))
	waitEstablished(t, frr, "10.0.1.1")

	s.Set("ep1", []route.Advert{advert("10.1.0.1/32", "65000:100", "65000:1:2")})
	s.Set("ep2", []route.Advert{advert("10.1.0.2/32"), advert("10.1.0.9/32", "65000:2")})
	s.Set("net1", []route.Advert{advert("10.1.0.9/32", "65000:1")})
	testnet.WaitFor(t, 10*time.Second, "10.1.0.1/32 in FRR's kernel", func() (bool, string) {
		out := kernelRoute(ns, "10.1.0.1/32")
		return strings.Contains(out, "via 10.0.1.1"), out
	})
	p := frrLookup(t, frr, "10.1.0.1/32")
	if len(p.Paths) != 1 || p.Paths[0].Nexthops[0].IP != "10.0.1.1" ||
		p.Paths[0].Community.String != "65000:100" || p.Paths[0].LargeCommunity.String != "65000:1:2" {
		t.Fatalf("FRR's path for 10.1.0.1/32 = %+v, want next hop 10.0.1.1, community 65000:100, large 65000:1:2", p)
	}
	waitCommunities(t, frr, "10.1.0.9/32", "65000:1 65000:2")

	s.Set("ep2", nil)
	waitGone(t, ns, "10.1.0.2/32")
	waitCommunities(t, frr, "10.1.0.9/32", "65000:1")
	if out := kernelRoute(ns, "10.1.0.1/32"); !strings.Contains(out, "via 10.0.1.1") {
		t.Fatalf("withdrawing ep2 removed ep1's route: %q", out)
	}
	s.Set("net1", nil)
	waitGone(t, ns, "10.1.0.9/32")
	s.Set("ep1", nil)
	waitGone(t, ns, "10.1.0.1/32")
	st, err := s.Status(context.Background())
	if err != nil || len(st.Peers) != 1 || st.Peers[0].State != "established" || st.Announced != 0 || st.LastError != "" {
		t.Fatalf("Status = %+v, %v; want one established peer, nothing announced, no error", st, err)
	}
}

func waitGone(t *testing.T, ns *testnet.NS, prefix string) {
	t.Helper()
	testnet.WaitFor(t, 10*time.Second, prefix+" withdrawn from "+ns.Name, func() (bool, string) {
		out := kernelRoute(ns, prefix)
		return out == "", out
	})
}

func waitCommunities(t *testing.T, f *testnet.FRR, prefix, want string) {
	t.Helper()
	testnet.WaitFor(t, 10*time.Second, prefix+" with communities "+want, func() (bool, string) {
		p := frrLookup(t, f, prefix)
		return len(p.Paths) == 1 && p.Paths[0].Community.String == want, fmt.Sprintf("%+v", p)
	})
}

// TestSetDropsMalformedAdverts: an advert GoBGP cannot carry is dropped at
// Set (logged), and never stalls the good ones.
func TestSetDropsMalformedAdverts(t *testing.T) {
	s := NewSpeaker(testConfig(), Options{Log: speakerLog(t)})
	good := advert("10.12.0.1/32", "65000:1")
	s.Set("ep", []route.Advert{
		good,
		{Prefix: netip.MustParsePrefix("10.12.0.1/24")},
		{Prefix: netip.MustParsePrefix("10.12.0.2/32"), Communities: []string{"65536:1"}},
		{Prefix: netip.MustParsePrefix("10.12.0.3/32"), LargeCommunities: []string{"1:2"}},
		{},
	})
	if got := s.advertsOf("ep"); len(got) != 1 || got[0].Prefix != good.Prefix {
		t.Fatalf("adverts of ep = %+v; want only %s", got, good.Prefix)
	}
	if !s.Owns(good.Prefix) || s.Owns(netip.MustParsePrefix("10.12.0.2/32")) {
		t.Errorf("Owns disagrees with the accepted adverts")
	}
}
