package fib

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// normalize checks a route and puts it in the one form the wanted set
// compares: masked prefix, plain (unmapped, zone-free) addresses, next hops
// sorted and without duplicates. The next hops are written into out's
// storage, so a caller can reuse one buffer for a batch of routes.
func normalize(prefix netip.Prefix, nexthops, out []Nexthop) (netip.Prefix, []Nexthop, error) {
	if !prefix.IsValid() {
		return prefix, nil, errors.New("not a valid prefix")
	}
	prefix = prefix.Masked()
	out = out[:0]
	for _, nh := range nexthops {
		nh, err := normalizeNexthop(prefix, nh)
		if err != nil {
			return prefix, nil, err
		}
		out = append(out, nh)
	}
	slices.SortFunc(out, compareNexthop)
	return prefix, slices.Compact(out), nil
}

func normalizeNexthop(prefix netip.Prefix, nh Nexthop) (Nexthop, error) {
	if !nh.Addr.IsValid() || nh.Addr.IsUnspecified() {
		return nh, fmt.Errorf("next hop %q: not a usable address", nh.Addr)
	}
	if nh.Link == "" {
		// fe80::1%eth0 carries its interface in the zone.
		nh.Link = nh.Addr.Zone()
	}
	nh.Addr = nh.Addr.WithZone("").Unmap()
	if nh.Addr.Is4() && prefix.Addr().Is6() {
		return nh, fmt.Errorf("next hop %s: an IPv6 route cannot go via an IPv4 address", nh.Addr)
	}
	if nh.Addr.IsLinkLocalUnicast() && nh.Link == "" {
		return nh, fmt.Errorf("next hop %s: a link-local next hop needs its interface (Link)", nh.Addr)
	}
	return nh, nil
}

func compareNexthop(a, b Nexthop) int {
	return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Link, b.Link))
}

// kernelPaths resolves the next hops' interface names to indexes, from
// t.links; while *refresh is true a miss may dump the links once (an
// interface created since the last lookup). t.mu must be held.
func (t *Table) kernelPaths(nexthops []Nexthop, refresh *bool) ([]path, error) {
	paths := make([]path, 0, len(nexthops))
	for _, nh := range nexthops {
		ifindex, err := t.linkIndex(nh.Link, refresh)
		if err != nil {
			return nil, fmt.Errorf("next hop %s: %w", nh.Addr, err)
		}
		paths = append(paths, path{addr: nh.Addr, ifindex: ifindex})
	}
	return paths, nil
}

func (t *Table) linkIndex(name string, refresh *bool) (int, error) {
	if name == "" {
		return 0, nil
	}
	if index, ok := t.links[name]; ok {
		return index, nil
	}
	if !*refresh {
		return 0, fmt.Errorf("interface %q not found", name)
	}
	*refresh = false
	links, err := t.link.linkIndexes()
	if err != nil {
		return 0, err
	}
	t.links = links
	return t.linkIndex(name, refresh)
}

// path is a next hop as the kernel reports it; ifindex 0 in a wanted path
// means "whichever interface the kernel chose".
type path struct {
	addr    netip.Addr
	ifindex int
}

func comparePath(a, b path) int {
	return cmp.Or(a.addr.Compare(b.addr), cmp.Compare(a.ifindex, b.ifindex))
}

// samePaths tells whether the kernel's route's paths are the ones we want;
// both are sorted by comparePath.
func samePaths(want []path, have []path) bool {
	return slices.EqualFunc(want, have, func(w, h path) bool {
		return w.addr == h.addr && (w.ifindex == 0 || w.ifindex == h.ifindex)
	})
}
