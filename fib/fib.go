// Package fib keeps the kernel's routing table in step with a declared set
// of routes: the routes the BGP speaker learned from its peers.
//
// Every route it installs carries its own route protocol number (Protocol),
// so `ip route show proto 201` lists exactly them, and Sync and Flush delete
// only those. Routes of any other protocol are never changed.
//
// All of its netlink work is in netlink.go.
package fib

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/logs"
)

// Protocol marks the kernel routes this plugin installs. 201 is not taken by
// iproute2's reserved list (/etc/iproute2/rt_protos: zebra 11, bird 12, FRR's
// daemons 186-199, ...) nor by common daemons, so our routes can be listed
// and cleaned up without touching anyone else's.
const Protocol netlink.RouteProtocol = 201

// Metric is the priority of our routes. The kernel's replace matches routes
// by table, prefix and metric only, not by protocol: a distinct metric keeps
// ReplaceBatch from overwriting a route someone else installed for the same
// prefix (connected and static IPv4 routes use 0, IPv6 ones 256 and 1024),
// and leaves theirs preferred.
const Metric = 2000

// component names fib in its log lines (see internal/logs).
const component = "fib"

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
	wanted map[netip.Prefix][]Nexthop // next hops sorted, see normalize; never modified in place
	// lastSet is the next-hop set last stored in wanted: routes learned
	// together mostly share their next hops, and storing the one slice for
	// all of them keeps 100,000 routes from holding 100,000 equal copies.
	lastSet []Nexthop
	// scratch is normalize's buffer, reused from route to route: a route's
	// next hops are copied out of it only when they are a new set.
	scratch []Nexthop
	links   map[string]int // interface indexes by name, refreshed on a miss and by Sync

	// writeMu orders kernel writes as their changes were made to wanted:
	// a writer takes it before letting go of mu, so readers of the wanted
	// set never wait for the kernel.
	writeMu sync.Mutex
	writer  *batchWriter
}

// New returns an empty table working in the current network namespace. It
// changes nothing in the kernel: call Flush to remove routes a previous run
// left, or Sync once the wanted routes are in.
func New(cfg Config) (*Table, error) {
	if cfg.Table < 0 {
		return nil, fmt.Errorf("fib table %d: must be 0 (main) or a table number", cfg.Table)
	}
	table := cfg.Table
	if table == 0 {
		table = unix.RT_TABLE_MAIN
	}
	link, err := newRouteLink()
	if err != nil {
		return nil, err
	}
	writer, err := newBatchWriter(table)
	if err != nil {
		link.close()
		return nil, err
	}
	log := logs.For(cfg.Log, component)
	return &Table{
		link:   link,
		table:  table,
		log:    log.WithField("table", table),
		wanted: make(map[netip.Prefix][]Nexthop),
		links:  make(map[string]int),
		writer: writer,
	}, nil
}

// Close releases the netlink sockets. The routes stay.
func (t *Table) Close() {
	t.link.close()
	t.writer.close()
}

// RouteError is one route that did not go into the kernel, and why.
type RouteError struct {
	Prefix netip.Prefix
	Err    error
}

func (e *RouteError) Error() string { return fmt.Sprintf("route %s: %v", e.Prefix, e.Err) }
func (e *RouteError) Unwrap() error { return e.Err }

// ReplaceBatch makes each route's next hops the wanted next hops of its
// prefix and installs the routes, written to the kernel in few system calls;
// it is how a burst of learned routes should arrive. A route with several
// next hops is one ECMP route; their order does not matter, and nothing is
// sent for a route that is unchanged. Empty next hops remove the route
// (removing an absent one is not an error). Later entries for a prefix win
// over earlier ones. It returns the routes that did not go in, each with the
// reason (the kernel's own words when it refused one). A route the kernel
// refused (say its gateway is not reachable yet) or whose interface is
// missing stays wanted, so Sync retries it; a malformed one is dropped. The
// error is ctx's, when it ended before every route was written.
func (t *Table) ReplaceBatch(ctx context.Context, routes []Route) ([]RouteError, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	refused := t.change(ctx, func() ([]routeOp, []RouteError) { return t.plan(routes) })
	return refused, ctx.Err()
}

// plan records routes in the wanted set and returns the kernel changes
// they need, and the routes rejected before reaching the kernel. t.mu must
// be held.
func (t *Table) plan(routes []Route) ([]routeOp, []RouteError) {
	var (
		ops     []routeOp
		refused []RouteError
	)
	refresh := true // one link dump per batch at most
	for _, r := range routes {
		op, changed, err := t.planRoute(r, &refresh)
		if err != nil {
			refused = append(refused, RouteError{Prefix: op.prefix, Err: err})
		} else if changed {
			ops = append(ops, op)
		}
	}
	return ops, refused
}

func (t *Table) planRoute(r Route, refresh *bool) (routeOp, bool, error) {
	prefix, nexthops, err := normalize(r.Prefix, r.Nexthops, t.scratch)
	if cap(nexthops) > cap(t.scratch) {
		t.scratch = nexthops
	}
	op := routeOp{prefix: prefix, metric: Metric}
	if err != nil {
		return op, false, err
	}
	old, had := t.wanted[prefix]
	if len(nexthops) == 0 {
		delete(t.wanted, prefix)
		return op, had, nil
	}
	if had && slices.Equal(old, nexthops) {
		return op, false, nil
	}
	if !slices.Equal(t.lastSet, nexthops) {
		t.lastSet = slices.Clone(nexthops)
	}
	nexthops = t.lastSet
	t.wanted[prefix] = nexthops
	op.paths, err = t.kernelPaths(nexthops, refresh)
	return op, err == nil, err
}

// change runs plan under t.mu (it changes the wanted set and returns the
// kernel writes that follow, and the routes it refused), then writes to the
// kernel and returns every route that did not go in. The kernel's turn
// (writeMu) is taken before mu is let go, so writes reach the kernel in the
// order their changes were made, and readers of the wanted set never wait
// for the kernel.
func (t *Table) change(ctx context.Context, plan func() ([]routeOp, []RouteError)) []RouteError {
	t.mu.Lock()
	ops, refused := plan()
	t.writeMu.Lock()
	t.mu.Unlock()
	defer t.writeMu.Unlock()
	return append(refused, t.write(ctx, ops)...)
}

// write sends ops to the kernel and returns those it refused; t.writeMu
// must be held.
func (t *Table) write(ctx context.Context, ops []routeOp) []RouteError {
	var refused []RouteError
	for i, err := range t.writer.write(ctx, ops) {
		if err == nil {
			continue
		}
		verb := "install"
		if ops[i].paths == nil {
			verb = "delete"
		}
		refused = append(refused, RouteError{Prefix: ops[i].prefix, Err: fmt.Errorf("%s: %w", verb, err)})
	}
	return refused
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
