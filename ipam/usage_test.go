package ipam

import (
	"context"
	"math"
	"testing"
)

func TestPoolsReportUsage(t *testing.T) {
	f := newFixture(t, Config{LocalRanges: prefixes("10.244.1.0/24")})
	v4 := f.pool("10.0.0.0/28", "", false).PoolID
	local := f.pool("10.244.0.0/16", "", false).PoolID
	v6 := f.pool("2001:db8::/64", "", true).PoolID
	for range 3 {
		f.address(v4, "")
	}
	f.address(local, "")
	want := map[string]struct{ allocated, free uint64 }{
		// /28: 16 addresses less network and broadcast = 14 usable; the
		// gateway and three containers hold 4.
		v4: {4, 10},
		// This host's /24 block: 256 usable (the pool's own network and
		// broadcast lie outside it); the gateway 10.244.0.1 lies outside
		// too, so only the container counts.
		local: {1, 255},
		// /64: the count saturates; the gateway is the only allocation.
		v6: {1, math.MaxUint64 - 1 - 1},
	}
	f.restart()
	pools, err := f.a.Pools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pools) != len(want) {
		t.Fatalf("Pools() = %+v, want %d pools", pools, len(want))
	}
	for _, p := range pools {
		w, ok := want[p.ID]
		if !ok {
			t.Errorf("unexpected pool %s", p.ID)
			continue
		}
		if p.Allocated != w.allocated || p.Free != w.free {
			t.Errorf("pool %s: allocated %d free %d, want %d and %d", p.ID, p.Allocated, p.Free, w.allocated, w.free)
		}
	}
	if pools[0].ID > pools[1].ID || pools[1].ID > pools[2].ID {
		t.Errorf("pools not sorted by ID: %v %v %v", pools[0].ID, pools[1].ID, pools[2].ID)
	}
}
