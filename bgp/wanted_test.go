package bgp

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
)

// TestWantedSetOwnership: set reports the prefixes that became or stopped
// being owned by anyone, and nothing for a change that keeps ownership.
func TestWantedSetOwnership(t *testing.T) {
	w := newWantedSet()
	steps := []struct {
		owner   string
		adverts []route.Advert
		want    []string
	}{
		{"a", []route.Advert{advert("10.0.0.1/32"), advert("10.0.0.2/32")}, []string{"10.0.0.1/32", "10.0.0.2/32"}},
		{"b", []route.Advert{advert("10.0.0.2/32")}, nil},                                                            // already a's
		{"a", []route.Advert{{Prefix: netip.MustParsePrefix("10.0.0.1/32"), Communities: []string{"65000:1"}}}, nil}, // 10.0.0.2 still b's
		{"a", nil, []string{"10.0.0.1/32"}},
		{"b", []route.Advert{advert("10.0.1.0/24")}, []string{"10.0.0.2/32", "10.0.1.0/24"}},
		{"b", nil, []string{"10.0.1.0/24"}},
	}
	for i, step := range steps {
		var got []string
		for _, p := range w.set(step.owner, step.adverts) {
			got = append(got, p.String())
		}
		slices.Sort(got)
		if !slices.Equal(got, step.want) {
			t.Errorf("step %d (%s): ownership changed for %v, want %v", i, step.owner, got, step.want)
		}
	}
	if len(w.byPrefix) != 0 || len(w.owners) != 0 {
		t.Errorf("after every owner left: %v, %v", w.byPrefix, w.owners)
	}
}
