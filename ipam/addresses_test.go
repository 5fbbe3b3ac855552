package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
)

var gatewayOpts = map[string]string{optRequestAddressType: labelGateway}

func TestRequestAddress(t *testing.T) {
	const (
		v4    = "ipvlan-bgp-local/10.0.0.0/24"
		v6    = "ipvlan-bgp-local/2001:db8::/64"
		local = "ipvlan-bgp-local/10.244.0.0/16"
	)
	for _, tc := range []struct {
		name    string
		poolID  string
		before  []string // allocated first
		address string
		want    string
		kind    error // non-nil: the request must fail so
		parts   []string
	}{
		{name: "v4 next free skips network and gateway", poolID: v4, want: "10.0.0.2/24"},
		{name: "v6 next free skips anycast and gateway", poolID: v6, want: "2001:db8::2/64"},
		{name: "local block's first address is a host address", poolID: local, want: "10.244.1.0/16"},
		{name: "v4 next free skips allocated", poolID: v4, before: []string{"10.0.0.2", "10.0.0.3"}, want: "10.0.0.4/24"},
		{name: "v6 next free skips allocated", poolID: v6, before: []string{"2001:db8::2"}, want: "2001:db8::3/64"},
		{name: "v4 requested", poolID: v4, address: "10.0.0.77", want: "10.0.0.77/24"},
		{name: "v6 requested", poolID: v6, address: "2001:db8::abcd", want: "2001:db8::abcd/64"},
		{name: "v6 requested last", poolID: v6, address: "2001:db8::ffff:ffff:ffff:ffff", want: "2001:db8::ffff:ffff:ffff:ffff/64"},
		{name: "requested in local block", poolID: local, address: "10.244.1.255", want: "10.244.1.255/16"},

		{name: "requested taken", poolID: v4, before: []string{"10.0.0.9"}, address: "10.0.0.9", kind: ErrInUse, parts: []string{`"10.0.0.9"`, "already allocated"}},
		{name: "requested gateway", poolID: v4, address: "10.0.0.1", kind: ErrInUse, parts: []string{`"10.0.0.1"`, "gateway"}},
		{name: "v4 network address", poolID: v4, address: "10.0.0.0", kind: ErrInvalid, parts: []string{`"10.0.0.0"`, "network"}},
		{name: "v4 broadcast address", poolID: v4, address: "10.0.0.255", kind: ErrInvalid, parts: []string{`"10.0.0.255"`, "broadcast"}},
		{name: "v6 subnet-router anycast", poolID: v6, address: "2001:db8::", kind: ErrInvalid, parts: []string{`"2001:db8::"`, "anycast"}},
		{name: "outside pool", poolID: v4, address: "10.9.0.5", kind: ErrInvalid, parts: []string{`"10.9.0.5"`, "outside pool 10.0.0.0/24"}},
		{name: "other family", poolID: v4, address: "2001:db8::5", kind: ErrInvalid, parts: []string{"outside pool 10.0.0.0/24"}},
		{name: "mapped v4", poolID: v4, address: "::ffff:10.0.0.5", kind: ErrInvalid, parts: []string{"outside pool"}},
		{name: "outside local block", poolID: local, address: "10.244.2.5", kind: ErrInvalid, parts: []string{`"10.244.2.5"`, "allocation range 10.244.1.0/24"}},
		{name: "not an address", poolID: v4, address: "banana", kind: ErrInvalid, parts: []string{`requested address "banana"`, "plain IP"}},
		{name: "CIDR instead of plain IP", poolID: v4, address: "10.0.0.5/24", kind: ErrInvalid, parts: []string{"plain IP"}},
		{name: "zone", poolID: v6, address: "2001:db8::5%eth0", kind: ErrInvalid, parts: []string{"zone"}},
		{name: "unknown pool", poolID: "ipvlan-bgp-local/10.99.0.0/16", kind: ErrUnknownPool, parts: []string{"PoolID", "10.99.0.0/16"}},
		{name: "malformed pool ID", poolID: "10.0.0.0/24", kind: ErrInvalid, parts: []string{`PoolID "10.0.0.0/24"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{LocalRanges: prefixes("10.244.1.0/24")})
			f.pool("10.0.0.0/24", "", false)
			f.pool("2001:db8::/64", "", true)
			f.pool("10.244.0.0/16", "", false)
			for _, a := range tc.before {
				f.address(tc.poolID, a)
			}
			stored := len(f.keys(bucketAllocations))
			res, err := f.a.RequestAddress(context.Background(), &ipamapi.RequestAddressRequest{PoolID: tc.poolID, Address: tc.address})
			if tc.kind != nil {
				checkErr(t, err, tc.kind, tc.parts...)
				if got := len(f.keys(bucketAllocations)); got != stored {
					t.Errorf("failed request changed the stored allocations: %d, want %d", got, stored)
				}
				return
			}
			if err != nil {
				t.Fatalf("RequestAddress: %v", err)
			}
			if res.Address != tc.want {
				t.Errorf("got %s, want %s", res.Address, tc.want)
			}
			if got := len(f.keys(bucketAllocations)); got != stored+1 {
				t.Errorf("stored allocations: %d, want %d", got, stored+1)
			}
		})
	}
}

// Each range is filled to the last address, refuses one more with an error
// saying how many it had, and hands out a released address again.
func TestExhaustion(t *testing.T) {
	for _, tc := range []struct {
		name          string
		local         []string
		subnet, rng   string
		want          []string
		usable        int
		gatewayInside bool
	}{
		{name: "v4 /30 pool", subnet: "10.0.0.0/30", want: []string{"10.0.0.2"}, usable: 2, gatewayInside: true},
		{name: "v4 /30 range in a /24", subnet: "10.0.0.0/24", rng: "10.0.0.4/30", want: []string{"10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7"}, usable: 4},
		{name: "v4 /30 range at the start of the pool", subnet: "10.0.0.0/24", rng: "10.0.0.0/30", want: []string{"10.0.0.2", "10.0.0.3"}, usable: 3, gatewayInside: true},
		{name: "v4 /30 range at the end of the pool", subnet: "10.0.0.0/24", rng: "10.0.0.252/30", want: []string{"10.0.0.252", "10.0.0.253", "10.0.0.254"}, usable: 3},
		{name: "v4 /30 local block", local: []string{"10.1.0.8/30"}, subnet: "10.1.0.0/16", want: []string{"10.1.0.8", "10.1.0.9", "10.1.0.10", "10.1.0.11"}, usable: 4},
		{name: "v6 /126 pool", subnet: "2001:db8::/126", want: []string{"2001:db8::2", "2001:db8::3"}, usable: 3, gatewayInside: true},
		{name: "v6 /126 range", subnet: "2001:db8::/64", rng: "2001:db8::8/126", want: []string{"2001:db8::8", "2001:db8::9", "2001:db8::a", "2001:db8::b"}, usable: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{LocalRanges: prefixes(tc.local...)})
			subnet := netip.MustParsePrefix(tc.subnet)
			res := f.pool(tc.subnet, tc.rng, subnet.Addr().Is6())
			for _, want := range tc.want {
				if got := f.address(res.PoolID, ""); got != netip.PrefixFrom(netip.MustParseAddr(want), subnet.Bits()).String() {
					t.Fatalf("got %s, want %s", got, want)
				}
			}
			block, _ := f.a.LocalRange(subnet)
			parts := []string{"pool " + tc.subnet, "range " + block.String(), fmt.Sprintf("all %d usable addresses", tc.usable)}
			if tc.gatewayInside {
				parts = append(parts, "gateway")
			}
			_, err := f.a.RequestAddress(context.Background(), &ipamapi.RequestAddressRequest{PoolID: res.PoolID})
			checkErr(t, err, ErrExhausted, parts...)

			// After a release the search wraps round to the freed address.
			freed := tc.want[len(tc.want)/2]
			if err := f.release(res.PoolID, freed); err != nil {
				t.Fatal(err)
			}
			if got := netip.MustParsePrefix(f.address(res.PoolID, "")).Addr().String(); got != freed {
				t.Errorf("after releasing %s got %s", freed, got)
			}
		})
	}
}

func TestReleaseAddress(t *testing.T) {
	f := newFixture(t, Config{})
	v4 := f.pool("10.0.0.0/24", "", false).PoolID
	v6 := f.pool("2001:db8::/64", "", true).PoolID
	f.address(v4, "10.0.0.5")
	f.address(v6, "2001:db8::5")
	for _, step := range []struct {
		poolID, address string
		kind            error // nil: must succeed
		parts           []string
	}{
		// A repeated release succeeds: Docker repeats it after a failure.
		{v4, "10.0.0.5", nil, nil},
		{v4, "10.0.0.5", nil, nil},
		{v6, "2001:db8::5", nil, nil},
		{v6, "2001:db8::5", nil, nil},
		{v4, "10.0.0.6", nil, nil},
		{v4, "10.9.0.6", ErrInvalid, []string{`released address "10.9.0.6"`, "outside pool 10.0.0.0/24"}},
		// Docker releases the gateway while removing a network, whichever
		// way it was reserved; it stays reserved until ReleasePool.
		{v4, "10.0.0.1", nil, nil},
		{v4, "10.0.0.1", nil, nil},
		{v6, "2001:db8::1", nil, nil},
		{v4, "", ErrInvalid, []string{"released address", "plain IP"}},
		{v4, "10.0.0.5/24", ErrInvalid, []string{"plain IP"}},
		{"ipvlan-bgp-local/10.5.0.0/24", "10.5.0.5", nil, nil}, // released with its pool
		{"10.5.0.0/24", "10.5.0.5", ErrInvalid, []string{"PoolID", "not a pool ID"}},
	} {
		err := f.release(step.poolID, step.address)
		if step.kind == nil {
			if err != nil {
				t.Errorf("release %s in %s: %v", step.address, step.poolID, err)
			}
			continue
		}
		checkErr(t, err, step.kind, step.parts...)
	}
	_, err := f.a.RequestAddress(context.Background(), &ipamapi.RequestAddressRequest{PoolID: v4, Address: "10.0.0.1"})
	checkErr(t, err, ErrInUse, "gateway")
	if got := f.keys(bucketAllocations); len(got) != 2 {
		t.Errorf("allocations left: %q, want the two gateways", got)
	}
}

func TestGateway(t *testing.T) {
	for _, tc := range []struct {
		name    string
		local   []string
		subnet  string
		before  []string // container addresses allocated first
		gateway string   // the explicit --gateway; empty: Docker asks for any
		want    string
		kind    error
		parts   []string
	}{
		{name: "no address returns the pool's", subnet: "10.0.0.0/24", want: "10.0.0.1/24"},
		{name: "same as the pool's", subnet: "10.0.0.0/24", gateway: "10.0.0.1", want: "10.0.0.1/24"},
		{name: "v4 explicit", subnet: "10.0.0.0/24", gateway: "10.0.0.254", want: "10.0.0.254/24"},
		{name: "v6 explicit", subnet: "2001:db8::/64", gateway: "2001:db8::fffe", want: "2001:db8::fffe/64"},
		{name: "outside the local block", local: []string{"10.244.1.0/24"}, subnet: "10.244.0.0/16", gateway: "10.244.0.254", want: "10.244.0.254/16"},
		{name: "outside the pool", subnet: "10.0.0.0/24", gateway: "10.0.1.1", kind: ErrInvalid, parts: []string{`--gateway "10.0.1.1"`, "outside pool 10.0.0.0/24"}},
		{name: "network address", subnet: "10.0.0.0/24", gateway: "10.0.0.0", kind: ErrInvalid, parts: []string{"--gateway", "network"}},
		{name: "held by a container", subnet: "10.0.0.0/24", before: []string{"10.0.0.7"}, gateway: "10.0.0.7", kind: ErrInUse, parts: []string{`--gateway "10.0.0.7"`, "already allocated"}},
		{name: "malformed", subnet: "10.0.0.0/24", gateway: "10.0.0.300", kind: ErrInvalid, parts: []string{`--gateway "10.0.0.300"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{LocalRanges: prefixes(tc.local...)})
			subnet := netip.MustParsePrefix(tc.subnet)
			res := f.pool(tc.subnet, "", subnet.Addr().Is6())
			for _, a := range tc.before {
				f.address(res.PoolID, a)
			}
			before := f.state()
			got, err := f.a.RequestAddress(context.Background(), &ipamapi.RequestAddressRequest{PoolID: res.PoolID, Address: tc.gateway, Options: gatewayOpts})
			if tc.kind != nil {
				checkErr(t, err, tc.kind, tc.parts...)
				if after := f.state(); !equalStates(before, after) {
					t.Errorf("failed request changed state: %v", after)
				}
				return
			}
			if err != nil {
				t.Fatalf("RequestAddress: %v", err)
			}
			if got.Address != tc.want {
				t.Errorf("got %s, want %s", got.Address, tc.want)
			}
			// Exactly one gateway is reserved, in memory and on disk.
			want := netip.MustParsePrefix(tc.want).Addr()
			f.restart()
			p := f.a.pools[res.PoolID]
			if p.gateway != want || len(p.taken) != len(tc.before)+1 {
				t.Errorf("after restart: gateway %s, %d taken; want %s and %d", p.gateway, len(p.taken), want, len(tc.before)+1)
			}
		})
	}
}

// An explicit gateway inside the range gives back the pool's first address,
// which Docker no longer uses: the range holds as many containers as before.
func TestExplicitGatewayFreesFirstAddress(t *testing.T) {
	f := newFixture(t, Config{})
	res := f.pool("10.0.0.0/29", "", false) // .1 to .6 usable
	if _, err := f.a.RequestAddress(context.Background(), &ipamapi.RequestAddressRequest{PoolID: res.PoolID, Address: "10.0.0.6", Options: gatewayOpts}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 5 {
		got = append(got, f.address(res.PoolID, ""))
	}
	if want := "[10.0.0.1/29 10.0.0.2/29 10.0.0.3/29 10.0.0.4/29 10.0.0.5/29]"; fmt.Sprint(got) != want {
		t.Errorf("allocated %v, want %s", got, want)
	}
	_, err := f.a.RequestAddress(context.Background(), &ipamapi.RequestAddressRequest{PoolID: res.PoolID})
	checkErr(t, err, ErrExhausted, "all 6 usable", "gateway 10.0.0.6")
}

func TestConcurrentRequestAddress(t *testing.T) {
	const n = 1000
	f := newFixture(t, Config{})
	res := f.pool("10.20.0.0/16", "10.20.16.0/20", false)
	block := netip.MustParsePrefix("10.20.16.0/20")
	results := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := f.a.RequestAddress(context.Background(), &ipamapi.RequestAddressRequest{PoolID: res.PoolID})
			if err == nil {
				results[i] = r.Address
			}
			errs[i] = err
		})
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		p := netip.MustParsePrefix(r)
		if p.Bits() != 16 || !block.Contains(p.Addr()) || seen[p.Addr()] {
			t.Fatalf("request %d got %s: duplicate, outside %s or wrong length", i, r, block)
		}
		seen[p.Addr()] = true
	}
	f.restart()
	if got := len(f.keys(bucketAllocations)); got != n+1 {
		t.Errorf("stored allocations after restart: %d, want %d and the gateway", got, n)
	}
}
