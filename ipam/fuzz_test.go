package ipam

import (
	"context"
	"maps"
	"net/netip"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

	"github.com/ipvlan-bgp/ipvlan-bgp/api"
)

// checkInvariants compares a pool's counters and set with each other and
// with the state file.
func checkInvariants(t *testing.T, f *fixture, p *pool) {
	t.Helper()
	var inRange uint64
	for a := range p.taken {
		if !p.prefix.Contains(a) || p.isSubnetReserved(a) || (a != p.gateway && !p.rng.Contains(a)) {
			t.Fatalf("pool %s holds %s", p.prefix, a)
		}
		if p.rng.Contains(a) {
			inRange++
		}
	}
	if inRange != p.inRange || inRange > p.usable || !p.isTaken(p.gateway) {
		t.Fatalf("pool %s: inRange %d counted %d, usable %d, gateway %s taken %v", p.prefix, p.inRange, inRange, p.usable, p.gateway, p.isTaken(p.gateway))
	}
	stored := map[string]bool{}
	for _, k := range storedKeys(t, f.a.db, bucketAllocations) {
		stored[k] = true
	}
	for a := range p.taken {
		if !stored[allocationKey(p.id, a)] {
			t.Fatalf("pool %s: %s in memory, not in the store", p.prefix, a)
		}
	}
}

func FuzzRequestPool(f *testing.F) {
	for _, seed := range []struct {
		space, pool, sub, key, value string
		v6                           bool
	}{
		{"", "10.244.0.0/16", "", "", "", false},
		{api.LocalAddressSpace, "10.244.0.0/16", "10.244.1.128/25", "", "", false},
		{api.GlobalAddressSpace, "2001:db8::/48", "2001:db8:0:1::/64", "", "", true},
		{"", "", "", "", "", true},
		{"", "", "", "", "", false},
		{"", "10.0.0.0/31", "", "", "", false},
		{"", "10.0.0.1/24", "", "", "", false},
		{"", "fd00:1::/64", "fd00:1::/128", "", "", true},
		{"", "10.0.0.0/24", "", "foo", "bar", false},
		{"x", "::ffff:1.2.3.4/120", "1.2.3.4/32", "", "", true},
		{"", "0.0.0.0/24", "", "", "", false},
		{"", "::/96", "", "", "", true},
		{"", "0.0.0.0/31", "", "", "", false},
	} {
		f.Add(seed.space, seed.pool, seed.sub, seed.key, seed.value, seed.v6)
	}
	fx := newFixture(f, Config{
		DefaultPools: prefixes("10.10.0.0/22", "fd10::/62"),
		LocalRanges:  prefixes("10.244.1.0/24", "fd00:1::/80"),
	})
	f.Fuzz(func(t *testing.T, space, subnet, ipRange, key, value string, v6 bool) {
		req := &ipamapi.RequestPoolRequest{AddressSpace: space, Pool: subnet, SubPool: ipRange, V6: v6}
		if key != "" {
			req.Options = map[string]string{key: value}
		}
		res, err := fx.a.RequestPool(context.Background(), req)
		if err != nil {
			if len(fx.a.pools) != 0 || len(storedKeys(t, fx.a.db, bucketAllocations)) != 0 || len(storedKeys(t, fx.a.db, bucketPools)) != 0 {
				t.Fatalf("failed request %+v left state: %v", req, fx.state())
			}
			return
		}
		pool := netip.MustParsePrefix(res.Pool)
		block, ok := fx.a.LocalRange(pool)
		switch {
		case pool.Addr().Is6() != v6 || pool != pool.Masked():
			t.Fatalf("pool %s for a V6=%v request", pool, v6)
		case subnet != "" && !isSize(netip.MustParsePrefix(subnet)) && netip.MustParsePrefix(subnet) != pool:
			t.Fatalf("asked for %s, got %s", subnet, pool)
		case subnet != "" && isSize(netip.MustParsePrefix(subnet)) && netip.MustParsePrefix(subnet).Bits() != pool.Bits():
			t.Fatalf("asked for a %s, got %s", subnet, pool)
		case len(res.Data) != 0:
			t.Fatalf("RequestPool answered data %v: Docker would take a gateway from it", res.Data)
		case !ok || !contains(pool, block) || (ipRange != "" && netip.MustParsePrefix(ipRange) != block):
			t.Fatalf("block %s (%v) of pool %s for --ip-range %q", block, ok, pool, ipRange)
		}
		p, err := fx.a.poolByID(res.PoolID)
		if err != nil {
			t.Fatalf("PoolID %q does not find its pool: %v", res.PoolID, err)
		}
		gw, err := fx.a.RequestAddress(context.Background(), &ipamapi.RequestAddressRequest{PoolID: res.PoolID, Options: gatewayOpts})
		if err != nil {
			t.Fatalf("gateway of a new pool %s: %v", pool, err)
		}
		gateway := netip.MustParsePrefix(gw.Address)
		if gateway.Bits() != pool.Bits() || !pool.Contains(gateway.Addr()) {
			t.Fatalf("gateway %s of pool %s", gateway, pool)
		}
		addr, err := fx.a.RequestAddress(context.Background(), &ipamapi.RequestAddressRequest{PoolID: res.PoolID})
		if err != nil {
			t.Fatalf("first address of a new pool %s, block %s: %v", pool, block, err)
		}
		if a := netip.MustParsePrefix(addr.Address); !block.Contains(a.Addr()) || a.Addr() == gateway.Addr() {
			t.Fatalf("address %s of block %s (gateway %s)", a, block, gateway)
		}
		checkInvariants(t, fx, p)
		if err := fx.a.ReleasePool(context.Background(), &ipamapi.ReleasePoolRequest{PoolID: res.PoolID}); err != nil {
			t.Fatal(err)
		}
		if len(storedKeys(t, fx.a.db, bucketAllocations)) != 0 || len(storedKeys(t, fx.a.db, bucketPools)) != 0 {
			t.Fatalf("ReleasePool left records")
		}
	})
}

func FuzzRequestAddress(f *testing.F) {
	for _, seed := range []struct {
		address         string
		v6, gw, release bool
	}{
		{"", false, false, false},
		{"", true, false, true},
		{"10.0.0.5", false, false, false},
		{"10.0.0.200", false, false, false},
		{"10.0.0.0", false, false, true},
		{"10.0.0.254", false, true, false},
		{"2001:db8::1", true, true, false},
		{"2001:db8::ffff", true, false, true},
		{"2001:db8::%eth0", true, false, false},
		{"::ffff:10.0.0.5", false, false, false},
		{"10.0.0.5/24", false, false, false},
	} {
		f.Add(seed.address, seed.v6, seed.gw, seed.release)
	}
	fx := newFixture(f, Config{})
	// A small v4 range fills up under fuzzing, so exhaustion is exercised.
	pools := map[bool]string{
		false: fx.pool("10.0.0.0/24", "10.0.0.0/28", false).PoolID,
		true:  fx.pool("2001:db8::/64", "", true).PoolID,
	}
	f.Fuzz(func(t *testing.T, address string, v6, gateway, release bool) {
		p := fx.a.pools[pools[v6]]
		before := maps.Clone(p.taken)
		req := &ipamapi.RequestAddressRequest{PoolID: p.id, Address: address}
		if gateway {
			req.Options = gatewayOpts
		}
		res, err := fx.a.RequestAddress(context.Background(), req)
		if err != nil {
			if !maps.Equal(before, p.taken) {
				t.Fatalf("failed request %+v changed the pool", req)
			}
			return
		}
		got := netip.MustParsePrefix(res.Address)
		a := got.Addr()
		switch {
		case got.Bits() != p.prefix.Bits():
			t.Fatalf("%s does not carry the pool's length %d", got, p.prefix.Bits())
		case gateway && (a != p.gateway || !p.prefix.Contains(a)):
			t.Fatalf("gateway %s, pool's %s", a, p.gateway)
		case !gateway && (!p.rng.Contains(a) || a == p.gateway):
			t.Fatalf("container address %s outside range %s or the gateway", a, p.rng)
		case !gateway && func() bool { _, dup := before[a]; return dup }():
			t.Fatalf("%s handed out twice", a)
		}
		if release && !gateway {
			if err := fx.release(p.id, a.String()); err != nil {
				t.Fatalf("release %s: %v", a, err)
			}
		}
		checkInvariants(t, fx, p)
	})
}
