package fib

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/rtnl"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

// TestReplaceBatchRefusesOnlyBadRoutes: one batch mixes good routes with
// routes the kernel refuses and routes rejected before the kernel; the good
// ones go in, and each bad one is reported under its own prefix with why.
func TestReplaceBatchRefusesOnlyBadRoutes(t *testing.T) {
	tbl, dev, n := newTestTable(t)
	gw := hop(fmt.Sprintf("10.%d.0.2", n), dev)
	good := []Route{
		{Prefix: pfx("198.51.100.0/24"), Nexthops: []Nexthop{gw}},
		{Prefix: pfx("198.51.102.0/24"), Nexthops: []Nexthop{gw, hop(fmt.Sprintf("10.%d.0.3", n), dev)}},
		{Prefix: pfx("198.51.104.0/24"), Nexthops: []Nexthop{hop("fe80::2", dev)}},
		{Prefix: pfx("2001:db8:ff::/48"), Nexthops: []Nexthop{hop("fe80::2", dev)}},
	}
	bad := map[netip.Prefix]struct {
		route Route
		errno syscall.Errno // 0: rejected before the kernel
		words string
	}{
		pfx("198.51.101.0/24"): {Route{Prefix: pfx("198.51.101.0/24"), Nexthops: []Nexthop{hop("172.31.0.2", "")}},
			unix.ENETUNREACH, "Nexthop has invalid gateway"},
		pfx("2001:db8:fe::/48"): {Route{Prefix: pfx("2001:db8:fe::/48"), Nexthops: []Nexthop{hop("2001:db8:99::1", "")}},
			unix.EHOSTUNREACH, "install: no route to host"},
		pfx("198.51.105.0/24"): {Route{Prefix: pfx("198.51.105.0/24"), Nexthops: []Nexthop{hop("fe80::2", "nosuch0")}},
			0, `interface "nosuch0" not found`},
		pfx("198.51.106.0/24"): {Route{Prefix: pfx("198.51.106.0/24"), Nexthops: []Nexthop{{}}}, 0, "not a usable address"},
	}
	batch := []Route{good[0], bad[pfx("198.51.101.0/24")].route, good[1], bad[pfx("2001:db8:fe::/48")].route,
		good[2], bad[pfx("198.51.105.0/24")].route, bad[pfx("198.51.106.0/24")].route, good[3]}

	refused, err := tbl.ReplaceBatch(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != len(bad) {
		t.Errorf("refused %d routes, want %d: %v", len(refused), len(bad), refused)
	}
	for _, r := range refused {
		want, ok := bad[r.Prefix]
		if !ok {
			t.Errorf("a good route was refused: %v", &r)
			continue
		}
		if (want.errno != 0 && !errors.Is(r.Err, want.errno)) || !strings.Contains(r.Error(), want.words) ||
			!strings.Contains(r.Error(), r.Prefix.String()) {
			t.Errorf("refusal of %s: got %q, want errno %v and %q", r.Prefix, r.Error(), want.errno, want.words)
		}
	}
	kernel := ours(t)
	for _, r := range good {
		if _, ok := kernel[r.Prefix.String()]; !ok {
			t.Errorf("good route %s not in the kernel: %v", r.Prefix, kernel)
		}
	}
	if len(kernel) != len(good) {
		t.Errorf("kernel has %d of our routes, want the %d good ones: %v", len(kernel), len(good), kernel)
	}
}

// TestReplaceBatchMatchesErrorsAcrossChunks: refusals spread over several
// sendmsg chunks, first and last messages of a chunk among them, are each
// matched to their own prefix by sequence number.
func TestReplaceBatchMatchesErrorsAcrossChunks(t *testing.T) {
	tbl, dev, n := newTestTable(t)
	good, unreachable := hop(fmt.Sprintf("10.%d.0.2", n), dev), hop("172.31.0.2", "")
	one := (&batchWriter{}).appendRouteMsg(nil, routeOp{prefix: benchPrefix(0), paths: []path{{addr: good.Addr, ifindex: 1}}}, 1)
	if chunkOps*len(one) > chunkBytes {
		t.Fatalf("chunks end at %d bytes, before %d messages of %d bytes: the chunk edges below are wrong", chunkBytes, chunkOps, len(one))
	}
	const total = 2*chunkOps + 10
	badAt := []int{0, chunkOps - 1, chunkOps, chunkOps + 1, 2*chunkOps - 1, total - 1}
	routes := make([]Route, total)
	for i := range routes {
		routes[i] = Route{Prefix: benchPrefix(i), Nexthops: []Nexthop{good}}
	}
	var want []netip.Prefix
	for _, i := range badAt {
		routes[i].Nexthops = []Nexthop{unreachable}
		want = append(want, routes[i].Prefix)
	}
	refused, err := tbl.ReplaceBatch(context.Background(), routes)
	if err != nil {
		t.Fatal(err)
	}
	var got []netip.Prefix
	for _, r := range refused {
		if !errors.Is(r.Err, unix.ENETUNREACH) {
			t.Errorf("refusal of %s: %v, want ENETUNREACH", r.Prefix, r.Err)
		}
		got = append(got, r.Prefix)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("refused %v, want %v", got, want)
	}
	if n := len(ours(t)); n != total-len(badAt) {
		t.Fatalf("kernel has %d of our routes, want %d", n, total-len(badAt))
	}
	// Removing them all, the refused ones included (never installed), is
	// no error: a missing route counts as deleted.
	for i := range routes {
		routes[i].Nexthops = nil
	}
	if refused, err := tbl.ReplaceBatch(context.Background(), routes); err != nil || len(refused) != 0 {
		t.Fatalf("removing all: %v, refused %v", err, refused)
	}
	if got := ours(t); len(got) != 0 {
		t.Fatalf("kernel still has %d of our routes", len(got))
	}
}

// TestReplaceInHighTable: a table number above 255 does not fit the
// message's table byte and travels in RTA_TABLE.
func TestReplaceInHighTable(t *testing.T) {
	_, dev, n := newTestTable(t)
	tbl, err := New(Config{Table: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	ctx := context.Background()
	prefix := pfx("198.51.100.0/24")
	if err := tbl.Replace(ctx, prefix, []Nexthop{hop(fmt.Sprintf("10.%d.0.2", n), dev)}); err != nil {
		t.Fatal(err)
	}
	show := func() string {
		return testnet.Host.Exec(t, "ip", "route", "show", "table", "1000", "proto", fmt.Sprint(Protocol))
	}
	if out := show(); !strings.Contains(out, prefix.String()) {
		t.Fatalf("route not in table 1000: %q", out)
	}
	if len(ours(t)) != 0 {
		t.Fatalf("route landed in main: %v", ours(t))
	}
	if err := tbl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if out := show(); out != "" {
		t.Fatalf("Flush left %q in table 1000", out)
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// FuzzReadAnswers feeds arbitrary bytes as the kernel's answers: they must
// never panic, and only an answer to an op gives it an error.
func FuzzReadAnswers(f *testing.F) {
	ack := func(seq uint32, errno int32, flags uint16, tail ...byte) []byte {
		b := binary.NativeEndian.AppendUint32(nil, uint32(16+4+16+len(tail)))
		b = binary.NativeEndian.AppendUint16(b, unix.NLMSG_ERROR)
		b = binary.NativeEndian.AppendUint16(b, flags)
		b = binary.NativeEndian.AppendUint32(b, seq)
		b = binary.NativeEndian.AppendUint32(b, 0)
		b = binary.NativeEndian.AppendUint32(b, uint32(errno))
		b = append(b, make([]byte, 16)...)
		return append(b, tail...)
	}
	msg := rtnl.AppendAttr(nil, unix.NLMSGERR_ATTR_MSG, []byte("Nexthop has invalid gateway\x00"))
	f.Add(append(ack(1, 0, 0), ack(2, -int32(unix.ENETUNREACH), unix.NLM_F_ACK_TLVS|unix.NLM_F_CAPPED, msg...)...))
	f.Add(ack(3, -int32(unix.ESRCH), 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		ops := []routeOp{{paths: []path{{}}}, {paths: []path{{}}}, {}}
		errs, answered := make([]error, len(ops)), make([]bool, len(ops))
		(&batchWriter{}).readAnswers(b, 1, ops, errs, answered)
		for i := range answered {
			if !answered[i] && errs[i] != nil {
				t.Fatalf("op %d not answered but has error %v", i, errs[i])
			}
		}
	})
}
