package fib

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// normalize checks a route and puts it in the one form the wanted set
// compares: masked prefix, plain (unmapped, zone-free) addresses, next hops
// sorted and without duplicates.
func normalize(prefix netip.Prefix, nexthops []Nexthop) (netip.Prefix, []Nexthop, error) {
	if !prefix.IsValid() {
		return prefix, nil, fmt.Errorf("route prefix %q: not a valid prefix", prefix)
	}
	prefix = prefix.Masked()
	out := make([]Nexthop, 0, len(nexthops))
	for _, nh := range nexthops {
		nh, err := normalizeNexthop(prefix, nh)
		if err != nil {
			return prefix, nil, fmt.Errorf("route %s: %w", prefix, err)
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

// kernelRoute builds the netlink route for prefix. Interface names are
// looked up in t.links; refresh allows one new link dump on a miss (an
// interface created since the last lookup). t.mu must be held.
func (t *Table) kernelRoute(prefix netip.Prefix, nexthops []Nexthop, refresh bool) (*netlink.Route, error) {
	r := t.ownRoute(prefix)
	for _, nh := range nexthops {
		ifindex, err := t.linkIndex(nh.Link, refresh)
		if err != nil {
			return nil, fmt.Errorf("route %s next hop %s: %w", prefix, nh.Addr, err)
		}
		r.MultiPath = append(r.MultiPath, nexthopInfo(prefix, nh.Addr, ifindex))
	}
	if len(r.MultiPath) == 1 {
		// A single path goes in the route itself, as `ip route` writes it.
		only := r.MultiPath[0]
		r.MultiPath, r.Gw, r.Via, r.LinkIndex = nil, only.Gw, only.Via, only.LinkIndex
	}
	return r, nil
}

// nexthopInfo is one path; an IPv6 next hop of an IPv4 route (RFC 8950) is
// written as RTA_VIA, as FRR installs it.
func nexthopInfo(prefix netip.Prefix, addr netip.Addr, ifindex int) *netlink.NexthopInfo {
	info := &netlink.NexthopInfo{LinkIndex: ifindex}
	if prefix.Addr().Is4() && addr.Is6() {
		info.Via = &netlink.Via{AddrFamily: unix.AF_INET6, Addr: addr.AsSlice()}
	} else {
		info.Gw = addr.AsSlice()
	}
	return info
}

func (t *Table) linkIndex(name string, refresh bool) (int, error) {
	if name == "" {
		return 0, nil
	}
	if index, ok := t.links[name]; ok || !refresh {
		if !ok {
			return 0, fmt.Errorf("interface %q not found", name)
		}
		return index, nil
	}
	links, err := t.link.linkIndexes()
	if err != nil {
		return 0, err
	}
	t.links = links
	return t.linkIndex(name, false)
}

// path is a next hop as the kernel reports it; ifindex 0 in a wanted path
// means "whichever interface the kernel chose".
type path struct {
	addr    netip.Addr
	ifindex int
}

func routePaths(r *netlink.Route) []path {
	infos := r.MultiPath
	if len(infos) == 0 {
		infos = []*netlink.NexthopInfo{{Gw: r.Gw, Via: r.Via, LinkIndex: r.LinkIndex}}
	}
	paths := make([]path, 0, len(infos))
	for _, info := range infos {
		ip := info.Gw
		if via, ok := info.Via.(*netlink.Via); ok && ip == nil {
			ip = via.Addr
		}
		addr, _ := netip.AddrFromSlice(ip)
		paths = append(paths, path{addr: addr.Unmap(), ifindex: info.LinkIndex})
	}
	slices.SortFunc(paths, func(a, b path) int {
		return cmp.Or(a.addr.Compare(b.addr), cmp.Compare(a.ifindex, b.ifindex))
	})
	return paths
}

// samePaths tells whether the kernel's route (have) is the one we want.
func samePaths(want, have *netlink.Route) bool {
	w, h := routePaths(want), routePaths(have)
	return slices.EqualFunc(w, h, func(w, h path) bool {
		return w.addr == h.addr && (w.ifindex == 0 || w.ifindex == h.ifindex)
	})
}

// ipNetPrefix converts a kernel destination; ok is false for anything that
// is not an IPv4 or IPv6 prefix.
func ipNetPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(n.IP)
	ones, bits := n.Mask.Size()
	if !ok || bits == 0 {
		return netip.Prefix{}, false
	}
	if bits == 32 {
		addr = addr.Unmap()
	}
	return netip.PrefixFrom(addr, ones), true
}
