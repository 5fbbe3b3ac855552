// Package fib keeps the kernel's routing table in step with a declared set
// of routes: the routes the BGP speaker learned from its peers.
//
// Every route it installs carries its own route protocol number (Protocol),
// so `ip route show proto 201` lists exactly them, and Sync and Flush delete
// only those. Routes of any other protocol are never changed.
package fib

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Protocol marks the kernel routes this plugin installs. 201 is not taken by
// iproute2's reserved list (/etc/iproute2/rt_protos: zebra 11, bird 12, FRR's
// daemons 186-199, ...) nor by common daemons, so our routes can be listed
// and cleaned up without touching anyone else's.
const Protocol netlink.RouteProtocol = 201

// Metric is the priority of our routes. The kernel's replace matches routes
// by table, prefix and metric only, not by protocol: a distinct metric keeps
// Replace from overwriting a route someone else installed for the same
// prefix (connected and static IPv4 routes use 0, IPv6 ones 256 and 1024),
// and leaves theirs preferred.
const Metric = 2000

// Nexthop is one next hop of a route.
type Nexthop struct {
	Addr netip.Addr
	// Link is the outgoing interface's name; required for an IPv6
	// link-local address, optional otherwise (the kernel then finds it).
	Link string
}

// Route is a prefix and the next hops the kernel balances it over.
type Route struct {
	Prefix   netip.Prefix
	Nexthops []Nexthop
}

// Config says where the routes go.
type Config struct {
	// Netlink is the handle to program; nil opens one in the current
	// network namespace.
	Netlink *netlink.Handle
	// Table is the routing table; 0 means main.
	Table int
	Log   *logrus.Entry
}

// Table is the wanted set of routes and the means to apply it.
type Table struct {
	link  *routeLink
	table int
	log   *logrus.Entry

	mu     sync.Mutex
	wanted map[netip.Prefix][]Nexthop // next hops sorted, see sortNexthops
	links  map[string]int             // interface indexes by name, refreshed on a miss and by Sync
}

// New returns an empty table. It changes nothing in the kernel: call Flush
// to remove routes a previous run left, or Sync once the wanted routes are in.
func New(cfg Config) (*Table, error) {
	if cfg.Table < 0 {
		return nil, fmt.Errorf("fib table %d: must be 0 (main) or a table number", cfg.Table)
	}
	link, err := newRouteLink(cfg.Netlink)
	if err != nil {
		return nil, err
	}
	table := cfg.Table
	if table == 0 {
		table = unix.RT_TABLE_MAIN
	}
	log := cfg.Log
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &Table{
		link:   link,
		table:  table,
		log:    log.WithField("table", table),
		wanted: make(map[netip.Prefix][]Nexthop),
		links:  make(map[string]int),
	}, nil
}

// Close releases the netlink handle New opened (not one passed in Config).
// The routes stay.
func (t *Table) Close() { t.link.close() }

// Replace makes nexthops the wanted next hops of prefix and installs the
// route: one ECMP route when there are several. Order does not matter, and
// nothing is sent when they are unchanged. An empty list removes the route.
// When the kernel refuses the route (say its gateway is not reachable yet)
// the error is returned and the route stays wanted, so Sync retries it.
func (t *Table) Replace(ctx context.Context, prefix netip.Prefix, nexthops []Nexthop) error {
	if len(nexthops) == 0 {
		return t.Remove(ctx, prefix)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	prefix, nexthops, err := normalize(prefix, nexthops)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if slices.Equal(t.wanted[prefix], nexthops) {
		return nil
	}
	t.wanted[prefix] = nexthops
	r, err := t.kernelRoute(prefix, nexthops, true)
	if err != nil {
		return err
	}
	return t.link.replace(r)
}

// Remove forgets prefix and deletes its route; removing an absent route is
// not an error.
func (t *Table) Remove(ctx context.Context, prefix netip.Prefix) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	prefix = prefix.Masked()
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.wanted[prefix]; !ok {
		return nil
	}
	delete(t.wanted, prefix)
	return t.link.del(t.ownRoute(prefix))
}

// Routes returns a copy of the wanted set, sorted by prefix.
func (t *Table) Routes() []Route {
	t.mu.Lock()
	routes := make([]Route, 0, len(t.wanted))
	for prefix, nexthops := range t.wanted {
		routes = append(routes, Route{Prefix: prefix, Nexthops: slices.Clone(nexthops)})
	}
	t.mu.Unlock()
	slices.SortFunc(routes, func(a, b Route) int { return a.Prefix.Compare(b.Prefix) })
	return routes
}

// Len is the number of wanted routes: a cheap gauge, where Routes copies.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.wanted)
}

// Run calls Sync every interval until ctx ends, so a route deleted by hand
// comes back and one refused earlier is retried. Failures are logged.
func (t *Table) Run(ctx context.Context, every time.Duration) {
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if err := t.Sync(ctx); err != nil {
				t.log.WithError(err).Warn("sync kernel routes")
			}
		}
	}
}

// ownRoute is the identity of our route for prefix: enough to delete it
// and to match nothing installed by another protocol.
func (t *Table) ownRoute(prefix netip.Prefix) *netlink.Route {
	return &netlink.Route{
		Dst:      prefixIPNet(prefix),
		Table:    t.table,
		Protocol: Protocol,
		Priority: Metric,
	}
}

func prefixIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
