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

// BenchmarkReplace100k installs 100,000 single-path routes through
// Table.Replace, then the same routes with a bare netlink loop (the
// baseline: one RouteReplace per route on one handle), in the same run.
func BenchmarkReplace100k(b *testing.B) {
	tbl, dev, n := newTestTable(b)
	gw := netip.MustParseAddr(fmt.Sprintf("10.%d.0.2", n))
	ctx := context.Background()
	for b.Loop() {
		start := time.Now()
		for i := range benchRoutes {
			if err := tbl.Replace(ctx, benchPrefix(i), []Nexthop{{Addr: gw, Link: dev}}); err != nil {
				b.Fatal(err)
			}
		}
		ours := time.Since(start)
		if err := tbl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		baseline := netlinkLoop(b, gw, dev)
		b.ReportMetric(benchRoutes/ours.Seconds(), "routes/s")
		b.ReportMetric(benchRoutes/baseline.Seconds(), "baseline-routes/s")
		b.Logf("%d routes: Table.Replace %.2fs (%.0f/s); bare netlink loop %.2fs (%.0f/s)",
			benchRoutes, ours.Seconds(), benchRoutes/ours.Seconds(), baseline.Seconds(), benchRoutes/baseline.Seconds())
	}
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
		r := &netlink.Route{Dst: prefixIPNet(benchPrefix(i)), Gw: net.IP(gw.AsSlice()), LinkIndex: link.Attrs().Index, Protocol: proto, Priority: Metric}
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
