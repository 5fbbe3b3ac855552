package fib

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

func TestMain(m *testing.M) { testnet.Main(m) }

var linkCounter atomic.Int64

// newTestTable gives a test a fresh table in the test namespace and a veth
// link named dev, addressed 10.N.0.1/24 and 2001:db8:N::1/64 so gateways
// .2-.254 are on-link. The table is flushed when the test ends.
func newTestTable(t testing.TB) (tbl *Table, dev string, subnet int) {
	t.Helper()
	testnet.RequireRoot(t)
	n := int(linkCounter.Add(1))
	dev = fmt.Sprintf("fib%d", n)
	testnet.Veth(t, testnet.Host, dev, testnet.NewNS(t, "fibpeer"), "peer")
	testnet.Host.AddAddr(t, dev, fmt.Sprintf("10.%d.0.1/24", n))
	testnet.Host.AddAddr(t, dev, fmt.Sprintf("2001:db8:%d::1/64", n))
	tbl, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tbl.Flush(context.Background()); err != nil {
			t.Errorf("flush: %v", err)
		}
		tbl.Close()
	})
	return tbl, dev, n
}

func ours(t *testing.T) map[string][]string {
	t.Helper()
	return testnet.Host.KernelRoutes(t, int(Protocol))
}

func hop(addr, link string) Nexthop { return Nexthop{Addr: netip.MustParseAddr(addr), Link: link} }

func TestReplaceInstallsRoute(t *testing.T) {
	tbl, dev, n := newTestTable(t)
	gw := func(host int) string { return fmt.Sprintf("10.%d.0.%d", n, host) }
	gw6 := func(host int) string { return fmt.Sprintf("2001:db8:%d::%d", n, host) }
	via := func(addr string) string { return fmt.Sprintf("via %s dev %s", addr, dev) }
	tests := []struct {
		name     string
		prefix   string
		nexthops []Nexthop
		want     []string
	}{
		{"single IPv4", "198.51.100.0/24", []Nexthop{hop(gw(2), "")}, []string{via(gw(2))}},
		{"ECMP IPv4, given in any order", "198.51.101.0/24",
			[]Nexthop{hop(gw(3), dev), hop(gw(2), dev)}, []string{via(gw(2)), via(gw(3))}},
		{"single IPv6", "2001:db8:ff::/48", []Nexthop{hop(gw6(2), dev)}, []string{via(gw6(2))}},
		{"ECMP IPv6 link-local", "2001:db8:fe::/48",
			[]Nexthop{hop("fe80::2", dev), hop("fe80::3", dev)}, []string{via("fe80::2"), via("fe80::3")}},
		{"IPv4 via IPv6 link-local (RFC 8950)", "198.51.102.0/24",
			[]Nexthop{hop("fe80::2", dev)}, []string{via("inet6 fe80::2")}},
		{"ECMP IPv4 via IPv6 link-locals", "198.51.103.0/24",
			[]Nexthop{hop("fe80::3", dev), hop("fe80::2", dev)}, []string{via("inet6 fe80::2"), via("inet6 fe80::3")}},
		{"link-local with its zone as interface", "198.51.104.0/24",
			[]Nexthop{{Addr: netip.MustParseAddr("fe80::2%" + dev)}}, []string{via("inet6 fe80::2")}},
		{"duplicate next hops collapse", "198.51.105.0/24",
			[]Nexthop{hop(gw(2), dev), hop(gw(2), dev)}, []string{via(gw(2))}},
		{"host bits are masked", "198.51.106.7/24", []Nexthop{hop(gw(2), dev)}, []string{via(gw(2))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefix := netip.MustParsePrefix(tc.prefix)
			if err := tbl.Replace(context.Background(), prefix, tc.nexthops); err != nil {
				t.Fatal(err)
			}
			got := ours(t)[prefix.Masked().String()]
			if !slices.Equal(got, tc.want) {
				t.Fatalf("kernel route %s: got %q, want %q\nall: %v", prefix, got, tc.want, ours(t))
			}
		})
	}
}

func TestReplaceChangesNexthops(t *testing.T) {
	tbl, dev, n := newTestTable(t)
	ctx := context.Background()
	prefix := netip.MustParsePrefix("198.51.100.0/24")
	gw := func(host int) Nexthop { return hop(fmt.Sprintf("10.%d.0.%d", n, host), dev) }
	via := func(host int) string { return fmt.Sprintf("via 10.%d.0.%d dev %s", n, host, dev) }
	steps := []struct {
		nexthops []Nexthop
		want     []string
	}{
		{[]Nexthop{gw(2), gw(3)}, []string{via(2), via(3)}},
		{[]Nexthop{gw(3), gw(4)}, []string{via(3), via(4)}},
		{[]Nexthop{gw(4)}, []string{via(4)}},
		{[]Nexthop{gw(5), gw(4), gw(6)}, []string{via(4), via(5), via(6)}},
	}
	for i, step := range steps {
		if err := tbl.Replace(ctx, prefix, step.nexthops); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := ours(t)[prefix.String()]; !slices.Equal(got, step.want) {
			t.Fatalf("step %d: kernel has %q, want %q", i, got, step.want)
		}
	}
	if err := tbl.Replace(ctx, prefix, nil); err != nil {
		t.Fatal(err)
	}
	if got, ok := ours(t)[prefix.String()]; ok {
		t.Fatalf("Replace with no next hops left %q in the kernel", got)
	}
}

// TestReplaceUnchangedSendsNothing deletes the route behind the table's back:
// an unchanged Replace must not reinstall it (no netlink call); Sync does.
func TestReplaceUnchangedSendsNothing(t *testing.T) {
	tbl, dev, n := newTestTable(t)
	ctx := context.Background()
	prefix := netip.MustParsePrefix("198.51.100.0/24")
	a, b := hop(fmt.Sprintf("10.%d.0.2", n), dev), hop(fmt.Sprintf("10.%d.0.3", n), dev)
	if err := tbl.Replace(ctx, prefix, []Nexthop{a, b}); err != nil {
		t.Fatal(err)
	}
	testnet.Host.Exec(t, "ip", "route", "del", prefix.String(), "proto", fmt.Sprint(Protocol))
	if err := tbl.Replace(ctx, prefix, []Nexthop{b, a}); err != nil {
		t.Fatal(err)
	}
	if got, ok := ours(t)[prefix.String()]; ok {
		t.Fatalf("an unchanged Replace reinstalled the route: %q", got)
	}
	if err := tbl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ours(t)[prefix.String()]; len(got) != 2 {
		t.Fatalf("Sync did not restore the route: %q", got)
	}
}

func TestRemove(t *testing.T) {
	tbl, dev, n := newTestTable(t)
	ctx := context.Background()
	keep, gone := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("198.51.101.0/24")
	for _, p := range []netip.Prefix{keep, gone} {
		if err := tbl.Replace(ctx, p, []Nexthop{hop(fmt.Sprintf("10.%d.0.2", n), dev)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // a second Remove finds nothing and is fine
		if err := tbl.Remove(ctx, gone); err != nil {
			t.Fatal(err)
		}
	}
	got := ours(t)
	if _, ok := got[gone.String()]; ok {
		t.Errorf("%s still in the kernel: %v", gone, got)
	}
	if _, ok := got[keep.String()]; !ok {
		t.Errorf("%s went too: %v", keep, got)
	}
	if routes := tbl.Routes(); len(routes) != 1 || routes[0].Prefix != keep {
		t.Errorf("Routes() = %v, want only %s", routes, keep)
	}
	// Deleted by hand, then removed: not an error either.
	testnet.Host.Exec(t, "ip", "route", "del", keep.String(), "proto", fmt.Sprint(Protocol))
	if err := tbl.Remove(ctx, keep); err != nil {
		t.Fatalf("Remove of a route deleted by hand: %v", err)
	}
}

func TestSyncRepairsKernel(t *testing.T) {
	tbl, dev, n := newTestTable(t)
	ctx := context.Background()
	gw := func(host int) string { return fmt.Sprintf("10.%d.0.%d", n, host) }
	proto := fmt.Sprint(Protocol)
	deleted, changed := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:ff::/48")
	if err := tbl.Replace(ctx, deleted, []Nexthop{hop(gw(2), dev), hop(gw(3), dev)}); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Replace(ctx, changed, []Nexthop{hop("fe80::2", dev)}); err != nil {
		t.Fatal(err)
	}
	want := ours(t)
	h := testnet.Host
	h.Exec(t, "ip", "route", "del", deleted.String(), "proto", proto)
	h.Exec(t, "ip", "-6", "route", "replace", changed.String(), "via", "fe80::9", "dev", dev, "proto", proto, "metric", fmt.Sprint(Metric))
	h.Exec(t, "ip", "route", "add", "203.0.113.0/24", "via", gw(4), "proto", proto)                // stray, our metric
	h.Exec(t, "ip", "route", "add", "203.0.114.0/24", "via", gw(4), "proto", proto, "metric", "7") // stray, other metric
	h.Exec(t, "ip", "route", "add", "203.0.115.0/24", "via", gw(4), "proto", "static")             // someone else's
	h.Exec(t, "ip", "route", "add", deleted.String(), "via", gw(5), "proto", "static")             // someone else's, same prefix

	if err := tbl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ours(t); !equalRoutes(got, want) {
		t.Fatalf("after Sync the kernel has %v, want %v", got, want)
	}
	for _, p := range []string{"203.0.115.0/24", deleted.String()} {
		if out := h.Exec(t, "ip", "route", "show", p, "proto", "static"); !strings.Contains(out, "via") {
			t.Errorf("Sync touched the static route to %s: %q", p, out)
		}
	}
}

func equalRoutes(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestFlushDeletesOnlyOurs(t *testing.T) {
	tbl, dev, n := newTestTable(t)
	ctx := context.Background()
	gw := fmt.Sprintf("10.%d.0.2", n)
	for _, p := range []string{"198.51.100.0/24", "2001:db8:ff::/48"} {
		if err := tbl.Replace(ctx, netip.MustParsePrefix(p), []Nexthop{hop("fe80::2", dev)}); err != nil {
			t.Fatal(err)
		}
	}
	h := testnet.Host
	h.Exec(t, "ip", "route", "add", "203.0.113.0/24", "via", gw, "proto", fmt.Sprint(Protocol), "metric", "7")
	h.Exec(t, "ip", "route", "add", "203.0.115.0/24", "via", gw, "proto", "static")
	h.Exec(t, "ip", "route", "add", "198.51.100.0/24", "via", gw, "proto", "bird")

	if err := tbl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ours(t); len(got) != 0 {
		t.Fatalf("after Flush the kernel still has %v", got)
	}
	if routes := tbl.Routes(); len(routes) != 0 {
		t.Fatalf("after Flush Routes() = %v", routes)
	}
	if got := h.KernelRoutes(t, 4); len(got) != 1 { // proto static
		t.Errorf("Flush touched static routes: %v", got)
	}
	if got := h.KernelRoutes(t, 12); len(got) != 1 { // proto bird
		t.Errorf("Flush touched BIRD's route: %v", got)
	}
}

// TestCoexistsWithOtherProtocols: a route another daemon installed for the
// same prefix survives our Replace and Remove (the kernel's replace matches
// on metric, not protocol).
func TestCoexistsWithOtherProtocols(t *testing.T) {
	tbl, dev, n := newTestTable(t)
	ctx := context.Background()
	h := testnet.Host
	for _, p := range []string{"198.51.100.0/24", "2001:db8:ff::/48"} {
		prefix := netip.MustParsePrefix(p)
		family, otherGw := "-4", fmt.Sprintf("10.%d.0.9", n)
		if prefix.Addr().Is6() {
			family, otherGw = "-6", fmt.Sprintf("2001:db8:%d::9", n)
		}
		h.Exec(t, "ip", family, "route", "add", p, "via", otherGw, "proto", "static")
		if err := tbl.Replace(ctx, prefix, []Nexthop{hop("fe80::2", dev)}); err != nil {
			t.Fatal(err)
		}
		if err := tbl.Remove(ctx, prefix); err != nil {
			t.Fatal(err)
		}
		if out := h.Exec(t, "ip", family, "route", "show", p, "proto", "static"); !strings.Contains(out, otherGw) {
			t.Errorf("the static route to %s is gone: %q", p, out)
		}
	}
}

func TestReplaceRejectsBadInput(t *testing.T) {
	tbl, dev, _ := newTestTable(t)
	v4 := netip.MustParsePrefix("198.51.100.0/24")
	tests := []struct {
		name     string
		prefix   netip.Prefix
		nexthops []Nexthop
		wantErr  string
	}{
		{"zero prefix", netip.Prefix{}, []Nexthop{hop("10.0.0.1", "")}, "not a valid prefix"},
		{"zero next hop", v4, []Nexthop{{}}, "not a usable address"},
		{"unspecified next hop", v4, []Nexthop{hop("0.0.0.0", "")}, "not a usable address"},
		{"link-local without interface", v4, []Nexthop{hop("fe80::1", "")}, "needs its interface (Link)"},
		{"IPv6 route via IPv4", netip.MustParsePrefix("2001:db8::/32"), []Nexthop{hop("10.0.0.1", dev)}, "cannot go via an IPv4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tbl.Replace(context.Background(), tc.prefix, tc.nexthops)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %v, want one saying %q", err, tc.wantErr)
			}
		})
	}
	if routes, got := tbl.Routes(), ours(t); len(routes) != 0 || len(got) != 0 {
		t.Fatalf("rejected routes left something: wanted %v, kernel %v", routes, got)
	}
}

// TestRefusedRouteRetriedBySync: a route the kernel cannot take yet (its
// gateway is not on any link, its interface does not exist) stays wanted
// and goes in once Sync finds it possible.
func TestRefusedRouteRetriedBySync(t *testing.T) {
	tbl, dev, _ := newTestTable(t)
	ctx := context.Background()
	unreachable := netip.MustParsePrefix("198.51.100.0/24")
	noLink := netip.MustParsePrefix("198.51.101.0/24")
	err := tbl.Replace(ctx, unreachable, []Nexthop{hop("172.31.0.2", "")})
	if err == nil || !strings.Contains(err.Error(), unreachable.String()) {
		t.Fatalf("Replace via an unreachable gateway: got %v, want an error naming the route", err)
	}
	err = tbl.Replace(ctx, noLink, []Nexthop{hop("fe80::2", "late0")})
	if err == nil || !strings.Contains(err.Error(), `interface "late0" not found`) {
		t.Fatalf("Replace via a missing interface: got %v", err)
	}
	if got := len(tbl.Routes()); got != 2 {
		t.Fatalf("refused routes are not kept as wanted: Routes() has %d", got)
	}
	testnet.Host.AddAddr(t, dev, "172.31.0.1/24")
	testnet.Veth(t, testnet.Host, "late0", testnet.NewNS(t, "fibpeer"), "peer")
	if err := tbl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got := ours(t)
	if !slices.Equal(got[unreachable.String()], []string{"via 172.31.0.2 dev " + dev}) ||
		!slices.Equal(got[noLink.String()], []string{"via inet6 fe80::2 dev late0"}) {
		t.Fatalf("Sync did not install the refused routes: %v", got)
	}
}

func TestRunRestoresDeletedRoute(t *testing.T) {
	tbl, dev, _ := newTestTable(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tbl.Run(ctx, 50*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	prefix := netip.MustParsePrefix("198.51.100.0/24")
	if err := tbl.Replace(ctx, prefix, []Nexthop{hop("fe80::2", dev)}); err != nil {
		t.Fatal(err)
	}
	testnet.Host.Exec(t, "ip", "route", "del", prefix.String(), "proto", fmt.Sprint(Protocol))
	testnet.WaitFor(t, 5*time.Second, "Run to restore the route", func() (bool, string) {
		got := ours(t)
		_, ok := got[prefix.String()]
		return ok, fmt.Sprint(got)
	})
}

func TestNewRejectsNegativeTable(t *testing.T) {
	if _, err := New(Config{Table: -1}); err == nil || !strings.Contains(err.Error(), "table -1") {
		t.Fatalf("got %v, want an error naming the table", err)
	}
}

// TestEqualNexthopsShareStorage: routes learned together mostly have the
// same next hops; the wanted set keeps one slice for them, not one each,
// and what Routes returns is still each route's own copy.
func TestEqualNexthopsShareStorage(t *testing.T) {
	tbl, dev, n := newTestTable(t)
	a, b := hop(fmt.Sprintf("10.%d.0.2", n), dev), hop(fmt.Sprintf("10.%d.0.3", n), dev)
	routes := []Route{
		{Prefix: pfx("198.51.100.0/24"), Nexthops: []Nexthop{a, b}},
		{Prefix: pfx("198.51.101.0/24"), Nexthops: []Nexthop{b, a}},
		{Prefix: pfx("198.51.102.0/24"), Nexthops: []Nexthop{a}},
	}
	if refused, err := tbl.ReplaceBatch(context.Background(), routes); err != nil || len(refused) > 0 {
		t.Fatalf("ReplaceBatch: refused %v, %v", refused, err)
	}
	tbl.mu.Lock()
	first, second, third := tbl.wanted[routes[0].Prefix], tbl.wanted[routes[1].Prefix], tbl.wanted[routes[2].Prefix]
	tbl.mu.Unlock()
	if &first[0] != &second[0] {
		t.Errorf("two routes with the same next hops hold two copies: %v and %v", first, second)
	}
	if &first[0] == &third[0] {
		t.Errorf("a route with other next hops shares their slice: %v and %v", first, third)
	}
	got := tbl.Routes()
	got[0].Nexthops[0] = b
	if again := tbl.Routes(); !slices.Equal(again[1].Nexthops, []Nexthop{a, b}) {
		t.Errorf("changing one route Routes returned changed another: %v", again[1].Nexthops)
	}
	want := []string{"via " + a.Addr.String() + " dev " + dev, "via " + b.Addr.String() + " dev " + dev}
	if got := ours(t)["198.51.101.0/24"]; !slices.Equal(got, want) {
		t.Errorf("kernel route %q, want %q", got, want)
	}
}

// TestSyncRepairsRoutesSharingNexthops: routes holding one shared next-hop
// set are each checked and repaired on their own.
func TestSyncRepairsRoutesSharingNexthops(t *testing.T) {
	tbl, dev, n := newTestTable(t)
	ctx := context.Background()
	gw := func(host int) string { return fmt.Sprintf("10.%d.0.%d", n, host) }
	set := []Nexthop{hop(gw(3), dev), hop(gw(2), dev)}
	var routes []Route
	for _, p := range []string{"198.51.100.0/24", "198.51.101.0/24", "198.51.102.0/24"} {
		routes = append(routes, Route{Prefix: pfx(p), Nexthops: set})
	}
	if refused, err := tbl.ReplaceBatch(ctx, routes); err != nil || len(refused) > 0 {
		t.Fatalf("ReplaceBatch: refused %v, %v", refused, err)
	}
	want := ours(t)
	proto, metric := fmt.Sprint(Protocol), fmt.Sprint(Metric)
	testnet.Host.Exec(t, "ip", "route", "replace", "198.51.101.0/24", "via", gw(9), "dev", dev, "proto", proto, "metric", metric)
	testnet.Host.Exec(t, "ip", "route", "del", "198.51.102.0/24", "proto", proto)
	if err := tbl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ours(t); !equalRoutes(got, want) {
		t.Fatalf("after Sync the kernel has %v, want %v", got, want)
	}
}
