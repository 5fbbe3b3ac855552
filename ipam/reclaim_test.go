package ipam

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

	"github.com/ipvlan-bgp/ipvlan-bgp/api"
)

// users is what a network driver would say about its networks and
// endpoints; the driver's own tests run it against the real IPAM.
type users struct {
	mu        sync.Mutex
	pools     map[netip.Prefix]bool
	held      map[netip.Addr]bool
	released  []netip.Prefix
	addresses []netip.Addr // released
}

func newUsers() *users {
	return &users{pools: map[netip.Prefix]bool{}, held: map[netip.Addr]bool{}}
}

func (u *users) UsesPool(p netip.Prefix) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.pools[p]
}

func (u *users) HoldsAddress(a netip.Addr) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.held[a]
}

func (u *users) PoolReleased(_ context.Context, p netip.Prefix) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.released = append(u.released, p)
}

func (u *users) AddressReleased(_ context.Context, a netip.Addr) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.addresses = append(u.addresses, a)
}

func (u *users) use(pool string, addrs ...string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.pools[netip.MustParsePrefix(pool)] = true
	for _, a := range addrs {
		u.held[netip.MustParseAddr(a)] = true
	}
}

// withUsers restarts f with u wired in, as the plugin does at start-up,
// with a claim window so short that what was stored is past it.
func (f *fixture) withUsers(u *users) {
	f.t.Helper()
	f.cfg.ClaimWindow = time.Nanosecond
	f.restart()
	f.a.SetUsers(u)
}

func (f *fixture) requestPool(req ipamapi.RequestPoolRequest) (*ipamapi.RequestPoolResponse, error) {
	return f.a.RequestPool(context.Background(), &req)
}

// TestRequestPoolAgain: the same request sent again after a restart (the
// first answer lost in the crash) gets the same answer while no network
// uses the pool; within one run, or once a network uses it, it overlaps.
func TestRequestPoolAgain(t *testing.T) {
	f := newFixture(t, Config{LocalRanges: prefixes("10.244.1.0/24")})
	u := newUsers()
	f.a.SetUsers(u)
	req := ipamapi.RequestPoolRequest{AddressSpace: api.LocalAddressSpace, Pool: "10.244.0.0/16"}
	first, err := f.requestPool(req)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.requestPool(req)
	checkErr(t, err, ErrInUse, "overlaps pool 10.244.0.0/16")
	f.restart()
	f.a.SetUsers(u)
	again, err := f.requestPool(req)
	if err != nil || again.PoolID != first.PoolID || again.Pool != first.Pool {
		t.Fatalf("the same request after a restart: %+v, %v; want %+v", again, err, first)
	}
	_, err = f.requestPool(ipamapi.RequestPoolRequest{AddressSpace: api.LocalAddressSpace, Pool: "10.244.0.0/16", SubPool: "10.244.1.0/25"})
	checkErr(t, err, ErrInUse, "overlaps pool 10.244.0.0/16")
	u.use("10.244.0.0/16")
	_, err = f.requestPool(req)
	checkErr(t, err, ErrInUse, "overlaps pool 10.244.0.0/16")
	if err := f.a.ReleasePool(context.Background(), &ipamapi.ReleasePoolRequest{PoolID: first.PoolID}); err != nil {
		t.Fatal(err)
	}
	if got := f.keys(bucketPools); len(got) != 0 {
		t.Fatalf("pools after the release: %q", got)
	}
}

// TestReleaseAddressTellsDriver: Docker releasing a container address is
// heard by the driver, whose endpoint still on it is gone in Docker's eyes;
// the gateway's release and a repeated release are not.
func TestReleaseAddressTellsDriver(t *testing.T) {
	f := newFixture(t, Config{})
	u := newUsers()
	f.a.SetUsers(u)
	res := f.pool("10.7.0.0/24", "", false)
	f.address(res.PoolID, "10.7.0.5")
	for _, a := range []string{"10.7.0.5", "10.7.0.5", "10.7.0.1"} {
		if err := f.release(res.PoolID, a); err != nil {
			t.Fatal(err)
		}
	}
	if want := []netip.Addr{netip.MustParseAddr("10.7.0.5")}; !slices.Equal(u.addresses, want) {
		t.Errorf("driver told of %v, want %v", u.addresses, want)
	}
}

// TestReclaimAbandonedPool: a pool an interrupted `docker network create`
// left behind gives way to the user's next create of an overlapping subnet,
// unless a network uses it or a container has an address in it.
func TestReclaimAbandonedPool(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(f *fixture, u *users, poolID string)
		reclaim bool
	}{
		{"nothing uses it", func(*fixture, *users, string) {}, true},
		{"with its gateway", func(f *fixture, _ *users, poolID string) {
			f.a.RequestAddress(context.Background(), &ipamapi.RequestAddressRequest{PoolID: poolID, Options: gatewayOpts})
		}, true},
		{"a network uses it", func(_ *fixture, u *users, _ string) { u.use("10.1.0.0/16") }, false},
		{"a container has an address", func(f *fixture, u *users, poolID string) {
			u.use("10.1.0.0/16")
			f.address(poolID, "10.1.0.9")
			u.pools = map[netip.Prefix]bool{}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			u := newUsers()
			f.a.SetUsers(u)
			old := f.poolWithoutGateway("10.1.0.0/16", "", false)
			tc.prepare(f, u, old.PoolID)
			// Within the claim window nothing is reclaimed: the network
			// may be on its way.
			_, err := f.requestPool(ipamapi.RequestPoolRequest{Pool: "10.1.0.0/16", SubPool: "10.1.2.0/24"})
			checkErr(t, err, ErrInUse, "overlaps pool 10.1.0.0/16")
			if tc.reclaim {
				checkErr(t, err, ErrInUse, "no network uses it yet: if an interrupted docker network create left it, it is reclaimed from")
			}
			f.withUsers(u)
			res, err := f.requestPool(ipamapi.RequestPoolRequest{Pool: "10.1.0.0/16", SubPool: "10.1.2.0/24"})
			if !tc.reclaim {
				checkErr(t, err, ErrInUse, "overlaps pool 10.1.0.0/16")
				return
			}
			if err != nil {
				t.Fatalf("create over an abandoned pool: %v", err)
			}
			if got := f.state()[res.PoolID]; got.Range != "10.1.2.0/24" || len(got.Taken) != 0 {
				t.Errorf("new pool %+v, want range 10.1.2.0/24 and nothing taken", got)
			}
			if got := f.keys(bucketAllocations); len(got) != 0 {
				t.Errorf("allocations of the reclaimed pool left: %q", got)
			}
		})
	}
}

// TestReleasePoolOfUncreatedNetwork: Docker releases the pool of a network
// whose CreateNetwork answer it never got; the driver hears of it.
func TestReleasePoolOfUncreatedNetwork(t *testing.T) {
	f := newFixture(t, Config{})
	u := newUsers()
	f.a.SetUsers(u)
	res := f.pool("10.3.0.0/24", "", false)
	u.use("10.3.0.0/24")
	if err := f.a.ReleasePool(context.Background(), &ipamapi.ReleasePoolRequest{PoolID: res.PoolID}); err != nil {
		t.Fatal(err)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.3.0.0/24")}; !slices.Equal(u.released, want) {
		t.Errorf("driver told of %v, want %v", u.released, want)
	}
}

// TestRequestAddressAgainAfterCrash: an address asked for by name and given
// to a container whose CreateEndpoint never came is given again; one an
// endpoint holds is not.
func TestRequestAddressAgainAfterCrash(t *testing.T) {
	f := newFixture(t, Config{})
	u := newUsers()
	f.a.SetUsers(u)
	res := f.pool("10.4.0.0/24", "", false)
	u.use("10.4.0.0/24")
	f.address(res.PoolID, "10.4.0.7")
	f.address(res.PoolID, "10.4.0.8")
	_, err := f.a.RequestAddress(context.Background(), &ipamapi.RequestAddressRequest{PoolID: res.PoolID, Address: "10.4.0.7"})
	checkErr(t, err, ErrInUse, "already allocated") // same run: another container may be on its way
	f.withUsers(u)
	u.use("10.4.0.0/24", "10.4.0.8")
	if got := f.address(res.PoolID, "10.4.0.7"); got != "10.4.0.7/24" {
		t.Errorf("asked again for 10.4.0.7 after a crash: %s", got)
	}
	_, err = f.a.RequestAddress(context.Background(), &ipamapi.RequestAddressRequest{PoolID: res.PoolID, Address: "10.4.0.8"})
	checkErr(t, err, ErrInUse, "already allocated")
}

// TestSweep: container addresses no endpoint holds are released once past
// the claim window; held ones, gateways and addresses reserved before the
// network existed (--aux-address) stay.
func TestSweep(t *testing.T) {
	f := newFixture(t, Config{})
	u := newUsers()
	f.a.SetUsers(u)
	res := f.pool("10.5.0.0/24", "", false)
	f.address(res.PoolID, "10.5.0.100") // --aux-address: the network does not exist yet
	u.use("10.5.0.0/24", "10.5.0.2")
	lost := f.address(res.PoolID, "")
	held := f.address(res.PoolID, "")
	if lost != "10.5.0.2/24" || held != "10.5.0.3/24" {
		t.Fatalf("addresses %s %s", lost, held)
	}
	u.held = map[netip.Addr]bool{netip.MustParseAddr("10.5.0.3"): true}
	if err := f.a.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(f.keys(bucketAllocations)); got != 4 {
		t.Fatalf("Sweep within the claim window released something: %d allocations left", got)
	}
	f.withUsers(u)
	if err := f.a.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"10.5.0.1", "10.5.0.100", "10.5.0.3"}
	if got := f.state()[res.PoolID].Taken; !slices.Equal(got, want) {
		t.Errorf("taken after Sweep: %q, want %q", got, want)
	}
	f.restart()
	if got := f.state()[res.PoolID].Taken; !slices.Equal(got, want) {
		t.Errorf("taken after a restart: %q, want %q", got, want)
	}
}

// TestNoGatewayWasted: a network that asks for no gateway (Docker 28, L3)
// gives its first address to a container.
func TestNoGatewayWasted(t *testing.T) {
	f := newFixture(t, Config{})
	res := f.poolWithoutGateway("10.6.0.0/24", "", false)
	if got := f.address(res.PoolID, ""); got != "10.6.0.1/24" {
		t.Errorf("first container address %s, want 10.6.0.1/24", got)
	}
}
