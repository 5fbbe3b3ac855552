package bgp

import (
	"net/netip"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
)

// wantedSet is what every owner wants announced, indexed by prefix, with the
// prefixes changed since the last reconcile, so a reconcile costs the size
// of the change, not of the whole set. The Speaker guards it with mu.
type wantedSet struct {
	owners   map[string][]route.Advert
	byPrefix map[netip.Prefix]map[string]route.Advert // prefix -> owner -> advert
	dirty    map[netip.Prefix]bool
}

func newWantedSet() wantedSet {
	return wantedSet{
		owners:   make(map[string][]route.Advert),
		byPrefix: make(map[netip.Prefix]map[string]route.Advert),
		dirty:    make(map[netip.Prefix]bool),
	}
}

// set replaces owner's adverts (a prefix listed twice keeps its last
// advert). It returns the prefixes that became or stopped being owned by
// anyone: a change of communities alone changes no ownership.
func (w *wantedSet) set(owner string, adverts []route.Advert) (ownership []netip.Prefix) {
	toggled := make(map[netip.Prefix]bool) // owned by anyone: lost (or gained) in this call
	for _, a := range w.owners[owner] {
		delete(w.byPrefix[a.Prefix], owner)
		if len(w.byPrefix[a.Prefix]) == 0 {
			delete(w.byPrefix, a.Prefix)
			toggled[a.Prefix] = true
		}
		w.dirty[a.Prefix] = true
	}
	delete(w.owners, owner)
	if len(adverts) > 0 {
		w.owners[owner] = adverts
	}
	for _, a := range adverts {
		if w.byPrefix[a.Prefix] == nil {
			w.byPrefix[a.Prefix] = make(map[string]route.Advert)
			toggled[a.Prefix] = !toggled[a.Prefix] // lost and regained is no change
		}
		w.byPrefix[a.Prefix][owner] = a
		w.dirty[a.Prefix] = true
	}
	for p, changed := range toggled {
		if changed {
			ownership = append(ownership, p)
		}
	}
	return ownership
}

// markAll makes the next reconcile look at every wanted prefix.
func (w *wantedSet) markAll() {
	for p := range w.byPrefix {
		w.dirty[p] = true
	}
}

// takeChanges returns, for every changed prefix, the path it should now
// have (merged over its owners: the union of their communities), or nil to
// withdraw it; allowed is the export allow list.
func (w *wantedSet) takeChanges(allowed func(netip.Prefix) bool) map[netip.Prefix]*pathAttrs {
	out := make(map[netip.Prefix]*pathAttrs, len(w.dirty))
	for p := range w.dirty {
		owners := w.byPrefix[p]
		if len(owners) == 0 || !allowed(p) {
			out[p] = nil
			continue
		}
		attrs := &pathAttrs{}
		for _, a := range owners {
			attrs.communities = sortedUnion(attrs.communities, a.Communities)
			attrs.largeCommunities = sortedUnion(attrs.largeCommunities, a.LargeCommunities)
		}
		out[p] = attrs
	}
	clear(w.dirty)
	return out
}

// markDirty puts prefixes back for the next reconcile (after a failure).
func (w *wantedSet) markDirty(prefixes []netip.Prefix) {
	for _, p := range prefixes {
		w.dirty[p] = true
	}
}
