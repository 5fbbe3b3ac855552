package ipam

import (
	"context"
	"net/netip"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
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
	p, err := newPool(LocalAddressSpace, prefix, prefix)
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
