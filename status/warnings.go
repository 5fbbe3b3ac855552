package status

import (
	"net/netip"

	"github.com/ipvlan-bgp/ipvlan-bgp/driver"
)

// addWarnings collects what may break the fabric quietly, each with what
// to set: the speaker's (another host in this AS, an unnumbered
// neighbour's interface missing) and a network that announces routes from
// a pool no local range narrows (driver.NoLocalRange).
func (doc *Document) addWarnings(bgpWarnings []string) {
	doc.Warnings = append(doc.Warnings, bgpWarnings...)
	whole := map[string]bool{} // pools this host allocates from in full
	for _, p := range doc.Pools {
		if p.Pool == p.Range {
			whole[p.Pool] = true
		}
	}
	for _, n := range doc.Networks {
		if n.Announce == "none" {
			continue
		}
		for _, s := range n.Subnets {
			if whole[s] {
				doc.Warnings = append(doc.Warnings, driver.NoLocalRange(n.ID, netip.MustParsePrefix(s), n.Announce))
			}
		}
	}
}
