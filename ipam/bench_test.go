package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

	"github.com/ipvlan-bgp/ipvlan-bgp/api"
)

// BenchmarkRequestAddress measures allocations through the whole path, the
// state file's commit included, which is what bounds the rate.
func BenchmarkRequestAddress(b *testing.B) {
	for _, bc := range []struct {
		name, subnet string
		v6           bool
	}{
		{"v4", "10.0.0.0/8", false},
		{"v6", "2001:db8::/64", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFixture(b, Config{})
			req := &ipamapi.RequestAddressRequest{PoolID: f.pool(bc.subnet, "", bc.v6).PoolID}
			ctx := context.Background()
			for b.Loop() {
				if _, err := f.a.RequestAddress(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "allocs/s")
		})
	}
}

// BenchmarkNextFreeNearlyFull is the search's worst case without the store:
// a /16 range with one free address, just behind the cursor.
func BenchmarkNextFreeNearlyFull(b *testing.B) {
	prefix := netip.MustParsePrefix("10.0.0.0/16")
	p, err := newPool(api.LocalAddressSpace, prefix, prefix)
	if err != nil {
		b.Fatal(err)
	}
	for a := prefix.Addr().Next(); prefix.Contains(a); a = a.Next() {
		if !p.isSubnetReserved(a) {
			p.take(a, allocation{})
		}
	}
	free := netip.MustParseAddr("10.0.100.100")
	p.free(free)
	for b.Loop() {
		p.cursor = free.Next()
		if got, err := p.nextFree(); err != nil || got != free {
			b.Fatalf("nextFree = %s, %v; want %s", got, err, free)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "searches/s")
}

// BenchmarkConcurrentAddresses is Docker starting and removing containers
// in parallel: 50 callers per CPU each requesting an address and releasing
// it, against one per CPU in the same run. Every answer waits for its
// record on disk; concurrent ones share the sync (store.Write).
func BenchmarkConcurrentAddresses(b *testing.B) {
	for _, callers := range []int{1, 50} {
		b.Run(fmt.Sprintf("callers-per-cpu=%d", callers), func(b *testing.B) {
			f := newFixture(b, Config{})
			pool := f.pool("10.0.0.0/16", "", false).PoolID
			ctx := context.Background()
			b.SetParallelism(callers)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := f.a.RequestAddress(ctx, &ipamapi.RequestAddressRequest{PoolID: pool})
					if err != nil {
						b.Error(err)
						return
					}
					ip := netip.MustParsePrefix(res.Address).Addr().String()
					if err := f.a.ReleaseAddress(ctx, &ipamapi.ReleaseAddressRequest{PoolID: pool, Address: ip}); err != nil {
						b.Error(err)
					}
				}
			})
			b.ReportMetric(2*float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}
