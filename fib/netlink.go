package fib

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dumpAttempts bounds the retries of a route dump the kernel marked as
// interrupted (the table changed while it was being read). Under a steady
// stream of changes a few retries are enough; past that the caller's next
// periodic Sync tries again.
const dumpAttempts = 5

// routeLink reads the kernel's routing tables and links (writes go through
// batchWriter): interrupted dumps are retried here, in one place.
type routeLink struct {
	h      *netlink.Handle
	routes *routeDumper
}

func newRouteLink() (*routeLink, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink route socket: %w", err)
	}
	routes, err := newRouteDumper()
	if err != nil {
		h.Close()
		return nil, err
	}
	return &routeLink{h: h, routes: routes}, nil
}

func (l *routeLink) close() {
	l.h.Close()
	l.routes.close()
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
