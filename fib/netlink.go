package fib

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// dumpAttempts bounds the retries of a route dump the kernel marked as
// interrupted (the table changed while it was being read). Under a steady
// stream of changes a few retries are enough; past that the caller's next
// periodic Sync tries again.
const dumpAttempts = 5

func init() {
	// The kernel then explains a refusal ("Nexthop has invalid gateway")
	// instead of a bare errno, for every socket the library opens per request.
	nl.EnableErrorMessageReporting = true
}

// routeLink is the only door to the kernel's routing tables: every netlink
// call of this package goes through it, so interrupted dumps are retried and
// "already gone" is not an error in one place.
type routeLink struct {
	h     *netlink.Handle
	owned bool // h was opened here and must be closed here
}

func newRouteLink(h *netlink.Handle) (*routeLink, error) {
	if h != nil {
		return &routeLink{h: h}, nil
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink route socket: %w", err)
	}
	return &routeLink{h: h, owned: true}, nil
}

func (l *routeLink) close() {
	if l.owned {
		l.h.Close()
	}
}

func (l *routeLink) replace(r *netlink.Route) error {
	if err := l.h.RouteReplace(r); err != nil {
		return fmt.Errorf("replace route %s: %w", r.Dst, err)
	}
	return nil
}

// del deletes r; a route that is already gone counts as deleted, so a
// repeated Remove or a route deleted by hand never fails.
func (l *routeLink) del(r *netlink.Route) error {
	err := l.h.RouteDel(r)
	if err == nil || errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return fmt.Errorf("delete route %s: %w", r.Dst, err)
}

// list returns the routes of one family carrying protocol in table.
func (l *routeLink) list(family, table int, protocol netlink.RouteProtocol) ([]netlink.Route, error) {
	filter := &netlink.Route{Table: table, Protocol: protocol}
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return l.h.RouteListFiltered(family, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes of protocol %d in table %d: %w", protocol, table, err)
	}
	return routes, nil
}

// linkIndexes maps every interface name to its index, in one dump.
func (l *routeLink) linkIndexes() (map[string]int, error) {
	links, err := retryDump(l.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	byName := make(map[string]int, len(links))
	for _, link := range links {
		byName[link.Attrs().Name] = link.Attrs().Index
	}
	return byName, nil
}

func retryDump[T any](dump func() (T, error)) (T, error) {
	var (
		result T
		err    error
	)
	for range dumpAttempts {
		result, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return result, err
}
