package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

	"github.com/ipvlan-bgp/ipvlan-bgp/api"
)

func TestRequestPool(t *testing.T) {
	type want struct{ id, pool, rng string }
	for _, tc := range []struct {
		name     string
		local    []string
		req      ipamapi.RequestPoolRequest
		want     want
		errParts []string // non-empty: the request must fail with ErrInvalid
	}{
		{name: "v4 subnet", req: ipamapi.RequestPoolRequest{Pool: "10.244.0.0/16"},
			want: want{"ipvlan-bgp-local/10.244.0.0/16", "10.244.0.0/16", "10.244.0.0/16"}},
		{name: "v6 subnet", req: ipamapi.RequestPoolRequest{Pool: "2001:db8:1::/64", V6: true},
			want: want{"ipvlan-bgp-local/2001:db8:1::/64", "2001:db8:1::/64", "2001:db8:1::/64"}},
		{name: "global space", req: ipamapi.RequestPoolRequest{AddressSpace: api.GlobalAddressSpace, Pool: "10.1.0.0/24"},
			want: want{"ipvlan-bgp-global/10.1.0.0/24", "10.1.0.0/24", "10.1.0.0/24"}},
		{name: "v4 ip-range", req: ipamapi.RequestPoolRequest{Pool: "10.244.0.0/16", SubPool: "10.244.3.0/24"},
			want: want{"ipvlan-bgp-local/10.244.0.0/16", "10.244.0.0/16", "10.244.3.0/24"}},
		{name: "v6 ip-range", req: ipamapi.RequestPoolRequest{Pool: "2001:db8::/48", SubPool: "2001:db8:0:5::/64", V6: true},
			want: want{"ipvlan-bgp-local/2001:db8::/48", "2001:db8::/48", "2001:db8:0:5::/64"}},
		{name: "v4 local range", local: []string{"10.244.1.0/24", "fd00:1::/80"}, req: ipamapi.RequestPoolRequest{Pool: "10.244.0.0/16"},
			want: want{"ipvlan-bgp-local/10.244.0.0/16", "10.244.0.0/16", "10.244.1.0/24"}},
		{name: "v6 local range", local: []string{"10.244.1.0/24", "fd00:1::/80"}, req: ipamapi.RequestPoolRequest{Pool: "fd00:1::/64", V6: true},
			want: want{"ipvlan-bgp-local/fd00:1::/64", "fd00:1::/64", "fd00:1::/80"}},
		{name: "local range holds the whole pool", local: []string{"10.0.0.0/8"}, req: ipamapi.RequestPoolRequest{Pool: "10.9.0.0/16"},
			want: want{"ipvlan-bgp-local/10.9.0.0/16", "10.9.0.0/16", "10.9.0.0/16"}},
		{name: "ip-range inside local range", local: []string{"10.244.1.0/24"}, req: ipamapi.RequestPoolRequest{Pool: "10.244.0.0/16", SubPool: "10.244.1.128/25"},
			want: want{"ipvlan-bgp-local/10.244.0.0/16", "10.244.0.0/16", "10.244.1.128/25"}},
		{name: "smallest v4 pool", req: ipamapi.RequestPoolRequest{Pool: "10.3.0.0/30"},
			want: want{"ipvlan-bgp-local/10.3.0.0/30", "10.3.0.0/30", "10.3.0.0/30"}},
		{name: "v4 size only (Docker 29)", req: ipamapi.RequestPoolRequest{Pool: "0.0.0.0/26"},
			want: want{"ipvlan-bgp-local/10.248.0.0/26", "10.248.0.0/26", "10.248.0.0/26"}},
		{name: "v6 size only (Docker 29)", req: ipamapi.RequestPoolRequest{Pool: "::/96", V6: true},
			want: want{"ipvlan-bgp-local/fd0c:248::/96", "fd0c:248::/96", "fd0c:248::/96"}},

		{name: "garbage subnet", req: ipamapi.RequestPoolRequest{Pool: "banana"}, errParts: []string{`--subnet "banana"`, "CIDR"}},
		{name: "plain address as subnet", req: ipamapi.RequestPoolRequest{Pool: "10.0.0.1"}, errParts: []string{"--subnet", "CIDR"}},
		{name: "host bits set", req: ipamapi.RequestPoolRequest{Pool: "10.244.1.0/16"}, errParts: []string{"--subnet", "did you mean 10.244.0.0/16"}},
		{name: "v6 subnet for v4 pool", req: ipamapi.RequestPoolRequest{Pool: "2001:db8::/64"}, errParts: []string{"--subnet", "IPv6 subnet", "IPv4 pool"}},
		{name: "v4 subnet for v6 pool", req: ipamapi.RequestPoolRequest{Pool: "10.0.0.0/24", V6: true}, errParts: []string{"--subnet", "IPv4 subnet", "IPv6 pool"}},
		{name: "mapped v4", req: ipamapi.RequestPoolRequest{Pool: "::ffff:10.0.0.0/104", V6: true}, errParts: []string{"--subnet", "IPv4-mapped"}},
		{name: "slash zero", req: ipamapi.RequestPoolRequest{Pool: "0.0.0.0/0"}, errParts: []string{"--subnet", "/0"}},
		{name: "v4 /31", req: ipamapi.RequestPoolRequest{Pool: "10.0.0.0/31"}, errParts: []string{"--subnet", "too small", "/30"}},
		{name: "v6 /127", req: ipamapi.RequestPoolRequest{Pool: "2001:db8::/127", V6: true}, errParts: []string{"--subnet", "too small", "/126"}},
		{name: "size too small", req: ipamapi.RequestPoolRequest{Pool: "0.0.0.0/31"}, errParts: []string{`--subnet "0.0.0.0/31"`, "not a pool size: want /1 to /30"}},
		{name: "size of the other family", req: ipamapi.RequestPoolRequest{Pool: "::/96"}, errParts: []string{`--subnet "::/96"`, "an IPv6 size where Docker asked for an IPv4 pool"}},
		{name: "size with ip-range", req: ipamapi.RequestPoolRequest{Pool: "0.0.0.0/24", SubPool: "10.0.0.0/25"}, errParts: []string{"--ip-range", "not only a size"}},
		{name: "ip-range without subnet", req: ipamapi.RequestPoolRequest{SubPool: "10.0.0.0/24"}, errParts: []string{"--ip-range", "needs --subnet"}},
		{name: "ip-range garbage", req: ipamapi.RequestPoolRequest{Pool: "10.0.0.0/16", SubPool: "10.0.0.0/33"}, errParts: []string{`--ip-range "10.0.0.0/33"`}},
		{name: "ip-range outside subnet", req: ipamapi.RequestPoolRequest{Pool: "10.0.0.0/16", SubPool: "10.1.0.0/24"}, errParts: []string{"--ip-range", "not inside --subnet 10.0.0.0/16"}},
		{name: "ip-range larger than subnet", req: ipamapi.RequestPoolRequest{Pool: "10.0.0.0/16", SubPool: "10.0.0.0/8"}, errParts: []string{"--ip-range", "not inside"}},
		{name: "ip-range other family", req: ipamapi.RequestPoolRequest{Pool: "10.0.0.0/16", SubPool: "2001:db8::/64"}, errParts: []string{"--ip-range", "IPv6 subnet"}},
		{name: "ip-range outside local range", local: []string{"10.244.1.0/24"}, req: ipamapi.RequestPoolRequest{Pool: "10.244.0.0/16", SubPool: "10.244.2.0/24"},
			errParts: []string{"--ip-range", "10.244.1.0/24", "LocalRanges"}},
		{name: "range holds only the network address", req: ipamapi.RequestPoolRequest{Pool: "10.0.0.0/24", SubPool: "10.0.0.0/32"}, errParts: []string{"10.0.0.0/32", "no address left"}},
		{name: "range holds only the gateway", req: ipamapi.RequestPoolRequest{Pool: "10.0.0.0/24", SubPool: "10.0.0.0/31"}, errParts: []string{"10.0.0.0/31", "gateway 10.0.0.1"}},
		{name: "two local ranges in one pool", local: []string{"10.244.1.0/24", "10.244.2.0/24"}, req: ipamapi.RequestPoolRequest{Pool: "10.244.0.0/16"},
			errParts: []string{"LocalRanges", "10.244.1.0/24", "10.244.2.0/24"}},
		{name: "unknown options", req: ipamapi.RequestPoolRequest{Pool: "10.0.0.0/24", Options: map[string]string{"foo": "1", "bar": ""}},
			errParts: []string{`--ipam-opt "bar,foo"`, "unknown"}},
		{name: "unknown address space", req: ipamapi.RequestPoolRequest{AddressSpace: "default", Pool: "10.0.0.0/24"},
			errParts: []string{`AddressSpace "default"`, api.LocalAddressSpace}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{LocalRanges: prefixes(tc.local...), DefaultPools: prefixes("10.248.0.0/16", "fd0c:248::/48")})
			res, err := f.a.RequestPool(context.Background(), &tc.req)
			if len(tc.errParts) > 0 {
				checkErr(t, err, ErrInvalid, tc.errParts...)
				if len(f.a.pools) != 0 || len(f.keys(bucketPools)) != 0 || len(f.keys(bucketAllocations)) != 0 {
					t.Errorf("failed request left state behind: %v", f.state())
				}
				return
			}
			if err != nil {
				t.Fatalf("RequestPool: %v", err)
			}
			got := want{res.PoolID, res.Pool, ""}
			if block, ok := f.a.LocalRange(netip.MustParsePrefix(res.Pool)); ok {
				got.rng = block.String()
			}
			if got != tc.want || len(res.Data) != 0 {
				t.Errorf("got %+v with data %v, want %+v and no data (a gateway there is used by Docker 28 even where it needs none)", got, res.Data, tc.want)
			}
			// No gateway is set aside: Docker asks for one when the
			// network needs it (TestGateway).
			if keys := f.keys(bucketAllocations); len(keys) != 0 || !slices.Equal(f.keys(bucketPools), []string{tc.want.id}) {
				t.Errorf("stored pools %q, allocations %q; want %s alone", f.keys(bucketPools), keys, tc.want.id)
			}
		})
	}
}

func TestRequestPoolOverlap(t *testing.T) {
	f := newFixture(t, Config{})
	f.pool("10.1.0.0/16", "", false)
	f.pool("2001:db8::/48", "", true)
	for _, tc := range []struct {
		req      ipamapi.RequestPoolRequest
		existing string // empty: no overlap
	}{
		{ipamapi.RequestPoolRequest{Pool: "10.1.0.0/16", SubPool: "10.1.1.0/24"}, "10.1.0.0/16"},
		{ipamapi.RequestPoolRequest{Pool: "10.0.0.0/8"}, "10.1.0.0/16"},
		{ipamapi.RequestPoolRequest{Pool: "10.1.200.0/24"}, "10.1.0.0/16"},
		{ipamapi.RequestPoolRequest{Pool: "10.1.5.0/24", AddressSpace: api.GlobalAddressSpace}, "10.1.0.0/16"},
		{ipamapi.RequestPoolRequest{Pool: "2001:db8:0:1::/64", V6: true}, "2001:db8::/48"},
		{ipamapi.RequestPoolRequest{Pool: "2001:db8::/32", V6: true}, "2001:db8::/48"},
		{ipamapi.RequestPoolRequest{Pool: "10.2.0.0/16"}, ""},
		{ipamapi.RequestPoolRequest{Pool: "2001:db8:1::/48", V6: true}, ""},
	} {
		t.Run(tc.req.Pool, func(t *testing.T) {
			before := len(f.keys(bucketAllocations))
			_, err := f.a.RequestPool(context.Background(), &tc.req)
			if tc.existing == "" {
				if err != nil {
					t.Fatalf("RequestPool: %v", err)
				}
				return
			}
			checkErr(t, err, ErrInUse, "--subnet", tc.req.Pool, "overlaps pool "+tc.existing)
			if after := len(f.keys(bucketAllocations)); after != before {
				t.Errorf("failed request changed the allocations: %d, want %d", after, before)
			}
		})
	}
}

func TestCarveDefaults(t *testing.T) {
	defaults := prefixes("10.10.0.0/22", "192.168.8.0/23", "2001:db8:100::/62")
	for _, tc := range []struct {
		name     string
		existing []string
		v6       bool
		want     []string // carved in order, then the defaults are exhausted
	}{
		{"v4 empty", nil, false, []string{"10.10.0.0/24", "10.10.1.0/24", "10.10.2.0/24", "10.10.3.0/24", "192.168.8.0/24", "192.168.9.0/24"}},
		{"v4 one taken", []string{"10.10.1.0/24"}, false, []string{"10.10.0.0/24", "10.10.2.0/24", "10.10.3.0/24", "192.168.8.0/24", "192.168.9.0/24"}},
		{"v4 larger taken", []string{"10.10.2.0/23", "192.168.8.0/23"}, false, []string{"10.10.0.0/24", "10.10.1.0/24"}},
		{"v4 smaller taken", []string{"10.10.0.128/25", "192.168.9.0/30"}, false, []string{"10.10.1.0/24", "10.10.2.0/24", "10.10.3.0/24", "192.168.8.0/24"}},
		{"v4 all covered", []string{"10.0.0.0/8", "192.168.0.0/16"}, false, nil},
		{"v6 empty", nil, true, []string{"2001:db8:100::/64", "2001:db8:100:1::/64", "2001:db8:100:2::/64", "2001:db8:100:3::/64"}},
		{"v6 one taken", []string{"2001:db8:100::/64"}, true, []string{"2001:db8:100:1::/64", "2001:db8:100:2::/64", "2001:db8:100:3::/64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{DefaultPools: defaults})
			for _, p := range tc.existing {
				f.pool(p, "", netip.MustParsePrefix(p).Addr().Is6())
			}
			var got []string
			for range len(tc.want) {
				got = append(got, f.pool("", "", tc.v6).Pool)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("carved %q, want %q", got, tc.want)
			}
			_, err := f.a.RequestPool(context.Background(), &ipamapi.RequestPoolRequest{V6: tc.v6})
			checkErr(t, err, ErrExhausted, "DefaultPools", fmt.Sprintf("%s /%d", family(tc.v6), f.a.carveLen[tc.v6]))
			if len(tc.want) == 0 {
				return
			}
			// A released pool is carved again.
			id := poolID(api.LocalAddressSpace, netip.MustParsePrefix(tc.want[0]))
			if err := f.a.ReleasePool(context.Background(), &ipamapi.ReleasePoolRequest{PoolID: id}); err != nil {
				t.Fatal(err)
			}
			if again := f.pool("", "", tc.v6).Pool; again != tc.want[0] {
				t.Errorf("carved %s after releasing %s", again, tc.want[0])
			}
		})
	}
}

func TestCarveWithoutDefaultsOfFamily(t *testing.T) {
	f := newFixture(t, Config{DefaultPools: prefixes("10.10.0.0/16"), DefaultV6Len: 80})
	_, err := f.a.RequestPool(context.Background(), &ipamapi.RequestPoolRequest{V6: true})
	checkErr(t, err, ErrExhausted, "no --subnet given", "no IPv6 range", "/80")
	if got := f.pool("", "", false); got.Pool != "10.10.0.0/24" || len(got.Data) != 0 {
		t.Errorf("carved %+v", got)
	}
}

func TestReleasePool(t *testing.T) {
	f := newFixture(t, Config{})
	v4 := f.pool("10.0.0.0/24", "", false)
	v6 := f.pool("2001:db8::/64", "", true)
	for range 3 {
		f.address(v4.PoolID, "")
		f.address(v6.PoolID, "")
	}
	ctx := context.Background()
	if err := f.a.ReleasePool(ctx, &ipamapi.ReleasePoolRequest{PoolID: v4.PoolID}); err != nil {
		t.Fatalf("ReleasePool: %v", err)
	}
	if got := f.keys(bucketPools); !slices.Equal(got, []string{v6.PoolID}) {
		t.Errorf("pools after release = %q", got)
	}
	if got := f.keys(bucketAllocations); len(got) != 4 {
		t.Errorf("allocations after release = %q, want the v6 gateway and 3 addresses", got)
	}
	if _, ok := f.a.LocalRange(netip.MustParsePrefix("10.0.0.0/24")); ok {
		t.Error("LocalRange still knows the released pool")
	}
	// Releasing again succeeds: Docker repeats deletes.
	if err := f.a.ReleasePool(ctx, &ipamapi.ReleasePoolRequest{PoolID: v4.PoolID}); err != nil {
		t.Errorf("ReleasePool of a released pool: %v", err)
	}
	err := f.a.ReleasePool(ctx, &ipamapi.ReleasePoolRequest{PoolID: "10.0.0.0/24"})
	checkErr(t, err, ErrInvalid, "PoolID", "not a pool ID")

	// The subnet is free again, and starts empty.
	again := f.pool("10.0.0.0/24", "", false)
	if got := f.address(again.PoolID, ""); got != "10.0.0.2/24" {
		t.Errorf("first address of the re-created pool = %s", got)
	}
}

// Two hosts create the same network, each with its own block: their
// containers never share an address, and both report the same gateway.
func TestMultiHostSharedSubnet(t *testing.T) {
	hosts := []*fixture{
		newFixture(t, Config{LocalRanges: prefixes("10.244.1.0/24", "fd00:244:0:1::/64")}),
		newFixture(t, Config{LocalRanges: prefixes("10.244.2.0/24", "fd00:244:0:2::/64")}),
	}
	for _, tc := range []struct {
		subnet string
		v6     bool
	}{{"10.244.0.0/16", false}, {"fd00:244::/48", true}} {
		seen := map[string]int{}
		var gateways []string
		for i, h := range hosts {
			res := h.pool(tc.subnet, "", tc.v6)
			gateways = append(gateways, res.Data[labelGateway])
			block, _ := h.a.LocalRange(netip.MustParsePrefix(tc.subnet))
			for range 254 {
				addr := netip.MustParsePrefix(h.address(res.PoolID, "")).Addr()
				if !block.Contains(addr) {
					t.Fatalf("host %d allocated %s outside its block %s", i, addr, block)
				}
				if other, dup := seen[addr.String()]; dup {
					t.Fatalf("hosts %d and %d both allocated %s", other, i, addr)
				}
				seen[addr.String()] = i
			}
		}
		if gateways[0] != gateways[1] {
			t.Errorf("%s: gateways differ between hosts: %q", tc.subnet, gateways)
		}
	}
}
