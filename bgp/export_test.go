package bgp

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

// TestExportOnlyOwnedAllowedPrefixes: a route leaf1 sends reaches our RIB
// but never leaf2 (no transit), and an owned advert outside the export
// allow list is not sent while one inside is.
func TestExportOnlyOwnedAllowedPrefixes(t *testing.T) {
	ns1, host1, peer1 := link(t, "leaf1")
	ns2, host2, peer2 := link(t, "leaf2")
	testnet.Host.AddAddr(t, host1, "10.0.3.1/30")
	ns1.AddAddr(t, peer1, "10.0.3.2/30")
	testnet.Host.AddAddr(t, host2, "10.0.4.1/30")
	ns2.AddAddr(t, peer2, "10.0.4.2/30")
	testnet.StartFRR(t, ns1, frrLeaf(65031, "10.0.3.2", ` neighbor 10.0.3.1 remote-as 64512
 address-family ipv4 unicast
  network 198.51.100.0/24
 exit-address-family`))
	leaf2 := testnet.StartFRR(t, ns2, frrLeaf(65032, "10.0.4.2", " neighbor 10.0.4.1 remote-as 64512"))
	cfg := testConfig(numbered("10.0.3.2", 65031), numbered("10.0.4.2", 65032))
	cfg.ExportAllow = []config.PrefixRule{{Prefix: netip.MustParsePrefix("10.3.0.0/16"), MinLen: 16, MaxLen: 32}}
	s := startSpeaker(t, cfg)

	testnet.WaitFor(t, 30*time.Second, "leaf1's 198.51.100.0/24 in our RIB", func() (bool, string) {
		return ribHas(t, s, "198.51.100.0/24"), "not yet"
	})
	s.Set("ep", []route.Advert{advert("10.3.0.1/32"), advert("10.4.0.1/32")})
	testnet.WaitFor(t, 30*time.Second, "10.3.0.1/32 at leaf2", func() (bool, string) {
		out := kernelRoute(ns2, "10.3.0.1/32")
		return strings.Contains(out, "via 10.0.4.1"), out
	})
	// Updates to leaf2 go out in order: once a marker announced after them
	// is there, the transit route and the refused advert would be too.
	s.Set("marker", []route.Advert{advert("10.3.0.9/32")})
	testnet.WaitFor(t, 30*time.Second, "the marker 10.3.0.9/32 at leaf2", func() (bool, string) {
		out := kernelRoute(ns2, "10.3.0.9/32")
		return strings.Contains(out, "via 10.0.4.1"), out
	})
	for _, p := range []string{"198.51.100.0/24", "10.4.0.1/32"} {
		if got := frrLookup(t, leaf2, p); len(got.Paths) != 0 {
			t.Errorf("leaf2 received %s: %+v", p, got)
		}
	}
	if !s.Owns(netip.MustParsePrefix("10.4.0.1/32")) || s.Owns(netip.MustParsePrefix("198.51.100.0/24")) {
		t.Errorf("Owns: want true for our refused advert, false for leaf1's route")
	}
}

// ribHas reports whether GoBGP's global RIB holds prefix.
func ribHas(t *testing.T, s *Speaker, prefix string) bool {
	found := false
	err := s.server.ListPath(apiutil.ListPathRequest{
		TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_IPv4_UC,
		Prefixes: []*apiutil.LookupPrefix{{Prefix: prefix}},
	}, func(_ bgp.NLRI, paths []*apiutil.Path) { found = found || len(paths) > 0 })
	if err != nil {
		t.Fatalf("ListPath: %v", err)
	}
	return found
}
