// Figures of BenchmarkReplace100k on the 2-core test machine (noisy),
// go test ./fib -run XXX -bench Replace100k -benchtime=1x -count=3;
// seconds for 100,000 single-path IPv4 routes:
//
//	Table.ReplaceBatch           1.14  1.27  1.22
//	Table.Replace, one per route 1.51  1.58  1.39
//	bare netlink loop (baseline) 2.28  2.15  2.06
//
// Before the batched writer, Table.Replace took 6.7-7.5 s against the
// loop's 2.8-4.9 s in the same runs (then under heavier load). Most of
// what is left is the kernel's own work inserting routes.

package fib

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const benchRoutes = 100_000

func benchPrefix(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(16 + i>>16), byte(i >> 8), byte(i), 0}), 24)
}

// newBenchTable is newTestTable with benchRoutes single-path routes via
// gw on dev, not yet installed.
func newBenchTable(b *testing.B) (tbl *Table, dev string, gw netip.Addr, routes []Route) {
	tbl, dev, n := newTestTable(b)
	gw = netip.MustParseAddr(fmt.Sprintf("10.%d.0.2", n))
	routes = make([]Route, benchRoutes)
	for i := range routes {
		routes[i] = Route{Prefix: benchPrefix(i), Nexthops: []Nexthop{{Addr: gw, Link: dev}}}
	}
	return tbl, dev, gw, routes
}

// BenchmarkReplace100k installs 100,000 single-path routes through one
// Table.ReplaceBatch, then one Table.Replace per route, then with a bare
// netlink loop (the baseline: one RouteReplace per route on one handle),
// all in the same run.
func BenchmarkReplace100k(b *testing.B) {
	tbl, dev, gw, routes := newBenchTable(b)
	ctx := context.Background()
	for b.Loop() {
		batch := timeInstall(b, tbl, func() {
			if refused, err := tbl.ReplaceBatch(ctx, routes); err != nil || len(refused) > 0 {
				b.Fatalf("ReplaceBatch: %v, refused %d, first %v", err, len(refused), refused)
			}
		})
		single := timeInstall(b, tbl, func() {
			for _, r := range routes {
				if err := tbl.Replace(ctx, r.Prefix, r.Nexthops); err != nil {
					b.Fatal(err)
				}
			}
		})
		baseline := netlinkLoop(b, gw, dev)
		b.ReportMetric(benchRoutes/batch.Seconds(), "batch-routes/s")
		b.ReportMetric(benchRoutes/single.Seconds(), "replace-routes/s")
		b.ReportMetric(benchRoutes/baseline.Seconds(), "baseline-routes/s")
		b.Logf("%d routes: ReplaceBatch %.2fs (%.0f/s); Replace each %.2fs (%.0f/s); bare netlink loop %.2fs (%.0f/s)",
			benchRoutes, batch.Seconds(), benchRoutes/batch.Seconds(), single.Seconds(), benchRoutes/single.Seconds(),
			baseline.Seconds(), benchRoutes/baseline.Seconds())
	}
}

// timeInstall times install, checks the kernel got every route, and
// flushes them.
func timeInstall(b *testing.B, tbl *Table, install func()) time.Duration {
	b.Helper()
	start := time.Now()
	install()
	took := time.Since(start)
	if n := countRoutes(b, Protocol); n != benchRoutes {
		b.Fatalf("kernel has %d of our routes, want %d", n, benchRoutes)
	}
	if err := tbl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	if n := countRoutes(b, Protocol); n != 0 {
		b.Fatalf("kernel has %d of our routes after Flush", n)
	}
	return took
}

func countRoutes(b *testing.B, proto netlink.RouteProtocol) int {
	b.Helper()
	routes, err := netlink.RouteListFiltered(unix.AF_INET, &netlink.Route{Protocol: proto}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		b.Fatal(err)
	}
	return len(routes)
}

func netlinkLoop(b *testing.B, gw netip.Addr, dev string) time.Duration {
	b.Helper()
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName(dev)
	if err != nil {
		b.Fatal(err)
	}
	const proto = 202
	start := time.Now()
	for i := range benchRoutes {
		p := benchPrefix(i)
		dst := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
		r := &netlink.Route{Dst: dst, Gw: net.IP(gw.AsSlice()), LinkIndex: link.Attrs().Index, Protocol: proto, Priority: Metric}
		if err := h.RouteReplace(r); err != nil {
			b.Fatal(err)
		}
	}
	took := time.Since(start)
	routes, err := h.RouteListFiltered(unix.AF_INET, &netlink.Route{Protocol: proto}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range routes {
		if err := h.RouteDel(&r); err != nil {
			b.Fatal(err)
		}
	}
	return took
}

// BenchmarkSync100k reads back 100,000 installed routes and finds nothing
// to repair: what the periodic Sync costs, in time and allocated memory,
// with a full table. go test ./fib -run XXX -bench Sync100k -benchtime 3x:
// 343 MB allocated per Sync when the dump was collected as netlink Routes
// and kept whole in a map; 138-156 MB streaming it and keeping only the
// paths; 126 MB (0.7 million allocations, was 1.2) resolving each shared
// next-hop set once. 0.44-0.79 s throughout. Decoding the dump itself
// (netlink.go) into one reused buffer, paths shared like the wanted set's:
// 16.8 MB and 1,021 allocations (the same run's old code: 126 MB, 703,400),
// 0.22 s (0.35 s).
func BenchmarkSync100k(b *testing.B) {
	tbl, _, _, routes := newBenchTable(b)
	ctx := context.Background()
	if refused, err := tbl.ReplaceBatch(ctx, routes); err != nil || len(refused) > 0 {
		b.Fatalf("ReplaceBatch: %v, refused %d", err, len(refused))
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := tbl.Sync(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
