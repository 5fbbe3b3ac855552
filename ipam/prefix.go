package ipam

import (
	"fmt"
	"math"
	"net/netip"
)

// prefixProblem says why p cannot serve as a pool, a range or a settings
// entry, or returns "" when it can.
func prefixProblem(p netip.Prefix) string {
	switch {
	case !p.IsValid():
		return "not a valid prefix"
	case p.Addr().Is4In6():
		return "an IPv4-mapped IPv6 prefix; write it in IPv4 form"
	case p != p.Masked():
		return fmt.Sprintf("host bits are set (did you mean %s?)", p.Masked())
	case p.Bits() == 0:
		return "a /0 prefix covers every address"
	}
	return ""
}

// parseSubnet reads a subnet Docker passed on from the user (--subnet,
// --ip-range) for a pool of the family Docker asked for.
func parseSubnet(field, s string, v6 bool) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, invalid(field, s, "not a subnet in CIDR form such as 10.244.0.0/16 or 2001:db8::/64")
	}
	if problem := prefixProblem(p); problem != "" {
		return netip.Prefix{}, invalid(field, s, "%s", problem)
	}
	if p.Addr().Is6() != v6 {
		return netip.Prefix{}, invalid(field, s, "an %s subnet where Docker asked for an %s pool", family(p.Addr().Is6()), family(v6))
	}
	return p, nil
}

// parseAddress reads an address Docker passed on (--ip, --ip6, --gateway,
// --aux-address, or one it is releasing). Docker sends plain IPs, never CIDR.
func parseAddress(field, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, invalid(field, s, "not a plain IP address")
	}
	if a.Zone() != "" {
		return netip.Addr{}, invalid(field, s, "an address with an IPv6 zone cannot be assigned to a container")
	}
	return a, nil
}

func family(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

// contains reports whether inner lies entirely inside outer.
func contains(outer, inner netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// lastAddr is the highest address of p (the IPv4 broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// hostBits is how many bits of p's addresses are free to vary.
func hostBits(p netip.Prefix) int { return p.Addr().BitLen() - p.Bits() }

// size is the number of addresses in p, saturating at MaxUint64 for IPv6
// prefixes of /64 and shorter: no allocation count can approach that.
func size(p netip.Prefix) uint64 {
	if hostBits(p) >= 64 {
		return math.MaxUint64
	}
	return 1 << hostBits(p)
}
