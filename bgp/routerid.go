package bgp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/rtnl"
)

// DefaultRouterID picks the router ID when BGP_ROUTER_ID is unset: the first
// IPv4 address of the interface holding the IPv4 default route, else of the
// first up, non-loopback interface.
func DefaultRouterID() (netip.Addr, error) {
	if a, ok := defaultRouteAddress(); ok {
		return a, nil
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list interfaces: %w", err)
	}
	for _, ifi := range ifaces {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagLoopback != 0 {
			continue
		}
		if a, ok := firstIPv4(ifi.Index); ok {
			return a, nil
		}
	}
	return netip.Addr{}, errors.New("no IPv4 address on the default-route interface nor on any up interface")
}

func defaultRouteAddress() (netip.Addr, bool) {
	routes, err := rtnl.RetryDump(func() ([]netlink.Route, error) { return netlink.RouteList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return netip.Addr{}, false
	}
	for _, r := range routes {
		if ones, _ := maskOf(r.Dst); ones != 0 {
			continue
		}
		if a, ok := firstIPv4(r.LinkIndex); ok {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func firstIPv4(linkIndex int) (netip.Addr, bool) {
	ifi, err := net.InterfaceByIndex(linkIndex)
	if err != nil {
		return netip.Addr{}, false
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP.To4()); ok && ip.Is4() {
				return ip, true
			}
		}
	}
	return netip.Addr{}, false
}

// maskOf is the prefix length of dst; a nil dst is the default route.
func maskOf(dst *net.IPNet) (int, int) {
	if dst == nil {
		return 0, 32
	}
	return dst.Mask.Size()
}
