package ipam

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/api"
	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

// fixture is one IPAM on a real state file that a test can restart.
type fixture struct {
	t    testing.TB
	cfg  Config
	path string
	a    *IPAM
}

func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	f := &fixture{t: t, cfg: cfg, path: filepath.Join(t.TempDir(), "state.db")}
	f.open()
	t.Cleanup(func() { _ = f.a.db.Close() })
	return f
}

func (f *fixture) open() {
	f.t.Helper()
	db, err := store.Open(f.path)
	if err != nil {
		f.t.Fatalf("open store: %v", err)
	}
	cfg := f.cfg
	cfg.Store = db
	cfg.Log = quietLog()
	if f.a, err = New(cfg); err != nil {
		f.t.Fatalf("New: %v", err)
	}
}

// restart closes the state file and loads a new IPAM from it, as a plugin
// restart does.
func (f *fixture) restart() {
	f.t.Helper()
	if err := f.a.db.Close(); err != nil {
		f.t.Fatalf("close store: %v", err)
	}
	f.open()
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.Out = io.Discard
	return logrus.NewEntry(l)
}

// pool requests a pool and its gateway, as `docker network create` does on
// Docker before 28 (and on 28 for an L2 network).
func (f *fixture) pool(subnet, ipRange string, v6 bool) *ipamapi.RequestPoolResponse {
	f.t.Helper()
	res := f.poolWithoutGateway(subnet, ipRange, v6)
	if _, err := f.a.RequestAddress(context.Background(), &ipamapi.RequestAddressRequest{PoolID: res.PoolID, Options: gatewayOpts}); err != nil {
		f.t.Fatalf("gateway of %s: %v", subnet, err)
	}
	return res
}

// poolWithoutGateway requests only a pool, as Docker 28 does for an L3
// network (GwAllocCheck).
func (f *fixture) poolWithoutGateway(subnet, ipRange string, v6 bool) *ipamapi.RequestPoolResponse {
	f.t.Helper()
	res, err := f.a.RequestPool(context.Background(), &ipamapi.RequestPoolRequest{Pool: subnet, SubPool: ipRange, V6: v6})
	if err != nil {
		f.t.Fatalf("RequestPool(%s, %s): %v", subnet, ipRange, err)
	}
	return res
}

func (f *fixture) address(poolID, want string) string {
	f.t.Helper()
	res, err := f.a.RequestAddress(context.Background(), &ipamapi.RequestAddressRequest{PoolID: poolID, Address: want})
	if err != nil {
		f.t.Fatalf("RequestAddress(%s, %q): %v", poolID, want, err)
	}
	return res.Address
}

func (f *fixture) release(poolID, addr string) error {
	return f.a.ReleaseAddress(context.Background(), &ipamapi.ReleaseAddressRequest{PoolID: poolID, Address: addr})
}

// keys lists a bucket of the state file.
func (f *fixture) keys(bucket string) []string {
	f.t.Helper()
	return storedKeys(f.t, f.a.db, bucket)
}

func storedKeys(t testing.TB, db *store.DB, bucket string) []string {
	t.Helper()
	var keys []string
	err := db.View(func(tx *store.Tx) error {
		return tx.ForEach(bucket, func(key string, _ func(any) error) error {
			keys = append(keys, key)
			return nil
		})
	})
	if err != nil {
		t.Fatalf("read bucket %s: %v", bucket, err)
	}
	return keys
}

// poolState is what a pool holds, in comparable form.
type poolState struct {
	Prefix, Range, Gateway string
	Taken                  []string
}

func (f *fixture) state() map[string]poolState {
	out := map[string]poolState{}
	for id, p := range f.a.pools {
		var taken []string
		for a := range p.taken {
			taken = append(taken, a.String())
		}
		slices.Sort(taken)
		out[id] = poolState{p.prefix.String(), p.rng.String(), p.gateway.String(), taken}
	}
	return out
}

// checkErr fails unless err is of kind and its text holds every part.
func checkErr(t testing.TB, err, kind error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v containing %q", kind, parts)
	}
	if !errors.Is(err, kind) {
		t.Errorf("error %q is not %v", err, kind)
	}
	for _, part := range parts {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not mention %q", err, part)
		}
	}
}

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

func TestNewValidatesConfig(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	for _, tc := range []struct {
		name  string
		cfg   Config
		parts []string // empty: valid
	}{
		{"defaults", Config{Store: db}, nil},
		{"full", Config{Store: db, DefaultPools: prefixes("10.10.0.0/16", "fd00::/48"), DefaultV4Len: 26, DefaultV6Len: 80, LocalRanges: prefixes("10.244.1.0/24", "fd01:0:0:1::/64")}, nil},
		{"no store", Config{}, []string{"Store"}},
		{"v4 len too short", Config{Store: db, DefaultV4Len: 7}, []string{"DefaultV4Len", `"7"`, "8 and 30"}},
		{"v4 len too long", Config{Store: db, DefaultV4Len: 31}, []string{"DefaultV4Len", `"31"`}},
		{"v6 len too long", Config{Store: db, DefaultV6Len: 127}, []string{"DefaultV6Len", `"127"`}},
		{"negative v6 len", Config{Store: db, DefaultV6Len: -1}, []string{"DefaultV6Len"}},
		{"default pool host bits", Config{Store: db, DefaultPools: prefixes("10.10.1.0/16")}, []string{"DefaultPools", "10.10.0.0/16"}},
		{"default pool smaller than carve", Config{Store: db, DefaultPools: prefixes("10.10.0.0/25")}, []string{"DefaultPools", "/24", "DefaultV4Len"}},
		{"default v6 pool smaller than carve", Config{Store: db, DefaultPools: prefixes("fd00::/96")}, []string{"DefaultPools", "DefaultV6Len"}},
		{"default pools overlap", Config{Store: db, DefaultPools: prefixes("10.10.0.0/16", "10.0.0.0/8")}, []string{"DefaultPools", "10.0.0.0/8", "10.10.0.0/16"}},
		{"default pool zero value", Config{Store: db, DefaultPools: []netip.Prefix{{}}}, []string{"DefaultPools", "not a valid prefix"}},
		{"default pool mapped", Config{Store: db, DefaultPools: prefixes("::ffff:10.0.0.0/104")}, []string{"DefaultPools", "IPv4-mapped"}},
		{"local ranges overlap", Config{Store: db, LocalRanges: prefixes("10.244.1.0/24", "10.244.1.128/25")}, []string{"LocalRanges", "10.244.1.128/25"}},
		{"local range /0", Config{Store: db, LocalRanges: prefixes("::/0")}, []string{"LocalRanges", "/0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Log = quietLog()
			_, err := New(tc.cfg)
			if len(tc.parts) == 0 {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			checkErr(t, err, ErrInvalid, tc.parts...)
		})
	}
}

func TestRestartRestoresEverything(t *testing.T) {
	f := newFixture(t, Config{LocalRanges: prefixes("10.244.1.0/24")})
	v4 := f.pool("10.244.0.0/16", "", false)
	v6 := f.pool("2001:db8:7::/64", "", true)
	ctx := context.Background()
	if _, err := f.a.RequestAddress(ctx, &ipamapi.RequestAddressRequest{PoolID: v4.PoolID, Address: "10.244.0.254",
		Options: map[string]string{optRequestAddressType: labelGateway}}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		f.address(v4.PoolID, "")
		f.address(v6.PoolID, "")
	}
	f.address(v4.PoolID, "10.244.1.200")
	for _, a := range []string{"10.244.1.2", "10.244.1.3"} {
		if err := f.release(v4.PoolID, a); err != nil {
			t.Fatal(err)
		}
	}
	before := f.state()

	f.restart()

	if after := f.state(); !equalStates(before, after) {
		t.Fatalf("state after restart\n%v\nwant\n%v", after, before)
	}
	if got, ok := f.a.LocalRange(netip.MustParsePrefix("10.244.0.0/16")); !ok || got.String() != "10.244.1.0/24" {
		t.Errorf("LocalRange after restart = %v, %v", got, ok)
	}
	// The cursor resumes past the highest address, so the released .2 and
	// .3 are not handed out first.
	if got := f.address(v4.PoolID, ""); got != "10.244.1.201/16" {
		t.Errorf("first allocation after restart = %s, want 10.244.1.201/16", got)
	}
	if err := f.release(v4.PoolID, "10.244.1.4"); err != nil {
		t.Errorf("release a restored allocation: %v", err)
	}
	if err := f.a.ReleasePool(ctx, &ipamapi.ReleasePoolRequest{PoolID: v6.PoolID}); err != nil {
		t.Errorf("release a restored pool: %v", err)
	}
}

func equalStates(a, b map[string]poolState) bool {
	if len(a) != len(b) {
		return false
	}
	for id, pa := range a {
		pb, ok := b[id]
		if !ok || pa.Prefix != pb.Prefix || pa.Range != pb.Range || pa.Gateway != pb.Gateway || !slices.Equal(pa.Taken, pb.Taken) {
			return false
		}
	}
	return true
}

// A failed store write must leave memory as it was, and the file too.
func TestStoreFailureLeavesNothing(t *testing.T) {
	f := newFixture(t, Config{DefaultPools: prefixes("10.50.0.0/16")})
	res := f.pool("10.0.0.0/24", "", false)
	f.address(res.PoolID, "")
	before := f.state()
	cursor := f.a.pools[res.PoolID].cursor
	if err := f.a.db.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := map[string]func() error{
		"RequestPool": func() error {
			_, err := f.a.RequestPool(ctx, &ipamapi.RequestPoolRequest{Pool: "10.1.0.0/24"})
			return err
		},
		"RequestPool carved": func() error {
			_, err := f.a.RequestPool(ctx, &ipamapi.RequestPoolRequest{})
			return err
		},
		"RequestAddress": func() error {
			_, err := f.a.RequestAddress(ctx, &ipamapi.RequestAddressRequest{PoolID: res.PoolID})
			return err
		},
		"RequestAddress gateway": func() error {
			_, err := f.a.RequestAddress(ctx, &ipamapi.RequestAddressRequest{PoolID: res.PoolID, Address: "10.0.0.254",
				Options: map[string]string{optRequestAddressType: labelGateway}})
			return err
		},
		"ReleaseAddress": func() error { return f.release(res.PoolID, "10.0.0.2") },
		"ReleasePool":    func() error { return f.a.ReleasePool(ctx, &ipamapi.ReleasePoolRequest{PoolID: res.PoolID}) },
	}
	for name, call := range calls {
		if err := call(); err == nil {
			t.Errorf("%s succeeded on a closed store", name)
		}
		if after := f.state(); !equalStates(before, after) {
			t.Errorf("%s changed memory despite failing: %v, want %v", name, after, before)
		}
	}
	if got := f.a.pools[res.PoolID].cursor; got != cursor {
		t.Errorf("cursor moved to %s on a failed allocation, was %s", got, cursor)
	}
	f.open()
	if after := f.state(); !equalStates(before, after) {
		t.Errorf("state file changed: %v, want %v", after, before)
	}
}

func TestLoadRejectsCorruptRecords(t *testing.T) {
	pool := poolRecord{AddressSpace: api.LocalAddressSpace, Pool: netip.MustParsePrefix("10.0.0.0/24"), Range: netip.MustParsePrefix("10.0.0.0/24")}
	id := poolID(api.LocalAddressSpace, pool.Pool)
	gateway := allocationRecord{PoolID: id, Address: netip.MustParseAddr("10.0.0.1"), Gateway: true}
	outside := pool
	outside.Range = netip.MustParsePrefix("10.9.0.0/24")
	for _, tc := range []struct {
		name        string
		pools       map[string]poolRecord
		allocations map[string]allocationRecord
		part        string
	}{
		{"range outside pool", map[string]poolRecord{id: outside}, nil, id},
		{"key does not match", map[string]poolRecord{"ipvlan-bgp-local/10.1.0.0/24": pool}, nil, "10.1.0.0/24"},
		{"two gateways", map[string]poolRecord{id: pool}, map[string]allocationRecord{
			"a": gateway, "b": {PoolID: id, Address: netip.MustParseAddr("10.0.0.9"), Gateway: true}}, "second gateway"},
		{"broadcast allocated", map[string]poolRecord{id: pool}, map[string]allocationRecord{
			"a": gateway, "b": {PoolID: id, Address: netip.MustParseAddr("10.0.0.255")}}, "10.0.0.255"},
		{"pool prefix invalid", map[string]poolRecord{id: {AddressSpace: api.LocalAddressSpace}}, nil, "not a valid prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			writeRecords(t, path, tc.pools, tc.allocations)
			db, err := store.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			_, err = New(Config{Store: db, Log: quietLog()})
			if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), tc.part) {
				t.Fatalf("New = %v, want ErrCorrupt mentioning %q", err, tc.part)
			}
		})
	}
}

func writeRecords(t *testing.T, path string, pools map[string]poolRecord, allocations map[string]allocationRecord) {
	t.Helper()
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *store.Tx) error {
		for k, v := range pools {
			if err := tx.Put(bucketPools, k, v); err != nil {
				return err
			}
		}
		for k, v := range allocations {
			if err := tx.Put(bucketAllocations, k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLoadRemovesOrphanAllocations(t *testing.T) {
	f := newFixture(t, Config{})
	res := f.pool("10.0.0.0/24", "", false)
	f.address(res.PoolID, "")
	err := f.a.db.Update(func(tx *store.Tx) error {
		return tx.Put(bucketAllocations, "ipvlan-bgp-local/10.7.0.0/24 10.7.0.5",
			allocationRecord{PoolID: "ipvlan-bgp-local/10.7.0.0/24", Address: netip.MustParseAddr("10.7.0.5")})
	})
	if err != nil {
		t.Fatal(err)
	}
	f.restart()
	want := []string{res.PoolID + " 10.0.0.1", res.PoolID + " 10.0.0.2"}
	if got := f.keys(bucketAllocations); !slices.Equal(got, want) {
		t.Errorf("allocations after load = %q, want %q", got, want)
	}
}

func TestContextCancelledWhileWaiting(t *testing.T) {
	f := newFixture(t, Config{})
	res := f.pool("10.0.0.0/24", "", false)
	if err := f.a.lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.a.RequestAddress(ctx, &ipamapi.RequestAddressRequest{PoolID: res.PoolID})
	f.a.unlock()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("RequestAddress with a cancelled context while the state is busy = %v, want context.Canceled", err)
	}
	if got := f.keys(bucketAllocations); len(got) != 1 {
		t.Errorf("allocations = %q, want only the gateway", got)
	}
}
