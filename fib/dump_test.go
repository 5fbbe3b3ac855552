package fib

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/rtnl"
)

// TestSyncReadsBackWhatItWrote: every kind of route fib writes, in the main
// table and a high one, is read back from the kernel's own dump as the
// wanted route, so a resync of a correct table changes nothing.
func TestSyncReadsBackWhatItWrote(t *testing.T) {
	for _, table := range []int{0, 1000} {
		t.Run(fmt.Sprintf("table %d", table), func(t *testing.T) {
			_, dev, n := newTestTable(t)
			tbl, err := New(Config{Table: table})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tbl.Flush(context.Background()); tbl.Close() })
			v4 := func(host int) Nexthop { return hop(fmt.Sprintf("10.%d.0.%d", n, host), dev) }
			v6 := func(host int) Nexthop { return hop(fmt.Sprintf("2001:db8:%d::%d", n, host), dev) }
			routes := []Route{
				{Prefix: pfx("198.51.100.0/24"), Nexthops: []Nexthop{v4(2)}},
				{Prefix: pfx("198.51.101.0/24"), Nexthops: []Nexthop{v4(3), v4(2)}},         // ECMP
				{Prefix: pfx("198.51.102.0/24"), Nexthops: []Nexthop{hop("fe80::2", dev)}},  // RFC 8950
				{Prefix: pfx("198.51.103.7/32"), Nexthops: []Nexthop{{Addr: v4(4).Addr}}},   // no interface named
				{Prefix: pfx("2001:db8:ff::/48"), Nexthops: []Nexthop{hop("fe80::3", dev)}}, // link-local
				{Prefix: pfx("2001:db8:fe::/48"), Nexthops: []Nexthop{v6(2), v6(3), v6(4)}}, // IPv6 ECMP
				{Prefix: pfx("2001:db8:fd::1/128"), Nexthops: []Nexthop{hop("fe80::2", dev), hop("fe80::3", dev)}},
				{Prefix: pfx("0.0.0.0/0"), Nexthops: []Nexthop{v4(5)}},
				{Prefix: pfx("::/0"), Nexthops: []Nexthop{v6(5)}},
			}
			if refused, err := tbl.ReplaceBatch(context.Background(), routes); err != nil || len(refused) > 0 {
				t.Fatalf("ReplaceBatch: refused %v, %v", refused, err)
			}
			installed, strays, err := tbl.installed()
			if err != nil {
				t.Fatal(err)
			}
			if len(installed) != len(routes) || len(strays) != 0 {
				t.Fatalf("read back %d routes and %d strays, want %d and none: %v", len(installed), len(strays), len(routes), installed)
			}
			tbl.mu.Lock()
			ops, refused := tbl.repairs(installed, strays)
			tbl.mu.Unlock()
			if len(ops) > 0 || len(refused) > 0 {
				t.Fatalf("a correct table needs repairs %v (refused %v)", ops, refused)
			}
		})
	}
}

// TestDecodeRouteReadsWhatWeWrite decodes the messages the batch writer
// encodes: the same layout the kernel uses for these attributes.
func TestDecodeRouteReadsWhatWeWrite(t *testing.T) {
	addr := netip.MustParseAddr
	tests := []struct {
		name string
		op   routeOp
	}{
		{"one gateway", routeOp{prefix: pfx("198.51.100.0/24"), metric: Metric, paths: []path{{addr("10.0.0.2"), 3}}}},
		{"gateway without interface", routeOp{prefix: pfx("198.51.100.0/24"), metric: 7, paths: []path{{addr("10.0.0.2"), 0}}}},
		{"IPv4 via IPv6", routeOp{prefix: pfx("198.51.100.0/24"), metric: Metric, paths: []path{{addr("fe80::1"), 4}}}},
		{"ECMP", routeOp{prefix: pfx("2001:db8::/32"), metric: Metric, paths: []path{{addr("2001:db8:1::1"), 2}, {addr("fe80::1"), 4}}}},
		{"host route", routeOp{prefix: pfx("203.0.113.9/32"), metric: Metric, paths: []path{{addr("10.0.0.2"), 3}, {addr("10.0.0.3"), 3}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const table = 1000
			w := &batchWriter{table: table}
			msg := w.appendRouteMsg(nil, tc.op, 1)
			got, ok := decodeRoute(msg[unix.SizeofNlMsghdr:], table, uint8(Protocol), nil)
			if !ok {
				t.Fatal("not decoded")
			}
			if got.prefix != tc.op.prefix || got.metric != tc.op.metric || !slices.Equal(got.paths, tc.op.paths) {
				t.Fatalf("decoded %+v, want %+v", got, tc.op)
			}
			if _, ok := decodeRoute(msg[unix.SizeofNlMsghdr:], table+1, uint8(Protocol), nil); ok {
				t.Error("a route of another table was decoded")
			}
			if _, ok := decodeRoute(msg[unix.SizeofNlMsghdr:], table, uint8(Protocol)+1, nil); ok {
				t.Error("a route of another protocol was decoded")
			}
		})
	}
}

// FuzzDecodeRoute feeds arbitrary bytes as a dumped route: never a panic,
// and a decoded route's prefix is always a valid one of its family.
func FuzzDecodeRoute(f *testing.F) {
	w := &batchWriter{table: unix.RT_TABLE_MAIN}
	for _, op := range []routeOp{
		{prefix: pfx("198.51.100.0/24"), metric: Metric, paths: []path{{netip.MustParseAddr("fe80::1"), 4}}},
		{prefix: pfx("2001:db8::/32"), metric: Metric, paths: []path{{netip.MustParseAddr("2001:db8:1::1"), 2}, {netip.MustParseAddr("fe80::1"), 4}}},
	} {
		f.Add(w.appendRouteMsg(nil, op, 1)[unix.SizeofNlMsghdr:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := decodeRoute(b, unix.RT_TABLE_MAIN, uint8(Protocol), nil)
		if ok && (!r.prefix.IsValid() || !slices.IsSortedFunc(r.paths, comparePath)) {
			t.Fatalf("decoded an invalid route %+v", r)
		}
		for msg := range rtnl.Messages(b) {
			if int(msg.Header.Len) != unix.SizeofNlMsghdr+len(msg.Body) {
				t.Fatalf("message body of %d bytes under a header of %d", len(msg.Body), msg.Header.Len)
			}
		}
	})
}
