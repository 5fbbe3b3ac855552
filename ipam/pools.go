package ipam

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

	"github.com/ipvlan-bgp/ipvlan-bgp/api"
	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

// Names of the request fields as the user knows them.
const (
	fieldPool    = "--subnet"
	fieldSubPool = "--ip-range"
	fieldOptions = "--ipam-opt"
	fieldSpace   = "AddressSpace"
	fieldPoolID  = "PoolID"
)

// RequestPool registers the network's subnet, or carves one from
// DefaultPools when none is given (or only its size: Docker 29 sends
// 0.0.0.0/24 for "a /24 of your choice"). It reserves no gateway: Docker
// asks for one with RequestAddress when the network needs it. A request
// whose answer a crash lost gets the same answer again (reclaim.go).
func (a *IPAM) RequestPool(ctx context.Context, req *ipamapi.RequestPoolRequest) (*ipamapi.RequestPoolResponse, error) {
	space, prefix, sub, err := parsePoolRequest(req)
	if err != nil {
		return nil, err
	}
	if err := a.lock(ctx); err != nil {
		return nil, err
	}
	defer a.unlock()
	if isSize(prefix) {
		if prefix, err = a.carve(req.V6, max(prefix.Bits(), 0)); err != nil {
			return nil, err
		}
	} else if p := a.lostPool(space, prefix, sub); p != nil {
		a.log.WithFields(p.logFields()).Info("Pool requested again after a restart: the same answer")
		return poolAnswer(p), nil
	}
	p, err := a.newPoolFor(space, prefix, sub)
	if err != nil {
		return nil, err
	}
	if err := a.db.Update(func(tx *store.Tx) error { return tx.Put(bucketPools, p.id, p.record()) }); err != nil {
		return nil, fmt.Errorf("save pool %s: %w", p.prefix, err)
	}
	p.since = time.Now()
	a.pools[p.id] = p
	a.log.WithFields(p.logFields()).Info("Pool created")
	return poolAnswer(p), nil
}

func poolAnswer(p *pool) *ipamapi.RequestPoolResponse {
	return &ipamapi.RequestPoolResponse{PoolID: p.id, Pool: p.prefix.String(), Data: map[string]string{}}
}

// isSize reports a request naming only a pool's size: no prefix, or an
// unspecified address (0.0.0.0/24, ::/96). The size is 0 without a prefix.
func isSize(p netip.Prefix) bool { return !p.IsValid() || p.Addr().IsUnspecified() }

// lostPool finds the pool an identical request made before the plugin
// restarted, if no network uses it: that request's answer was lost (the
// plugin was killed), and the user's repeat gets it. Within one run an
// identical request is an overlap, as Docker's own IPAM says.
func (a *IPAM) lostPool(space string, prefix, sub netip.Prefix) *pool {
	p := a.pools[poolID(space, prefix)]
	if p == nil || !p.since.IsZero() || a.users == nil || a.users.UsesPool(p.prefix) {
		return nil
	}
	if rng, err := a.allocationRange(prefix, sub); err != nil || rng != p.rng {
		return nil
	}
	return p
}

// parsePoolRequest checks everything about req that does not depend on
// other pools. prefix is the zero Prefix when a pool is to be carved.
func parsePoolRequest(req *ipamapi.RequestPoolRequest) (space string, prefix, sub netip.Prefix, err error) {
	switch req.AddressSpace {
	case "", api.LocalAddressSpace:
		space = api.LocalAddressSpace
	case api.GlobalAddressSpace:
		space = api.GlobalAddressSpace
	default:
		return "", prefix, sub, invalid(fieldSpace, req.AddressSpace, "not an address space of this driver (%s or %s)", api.LocalAddressSpace, api.GlobalAddressSpace)
	}
	if len(req.Options) > 0 {
		keys := slices.Sorted(maps.Keys(req.Options))
		return "", prefix, sub, invalid(fieldOptions, strings.Join(keys, ","), "unknown option: this IPAM driver takes no --ipam-opt")
	}
	if req.Pool == "" {
		if req.SubPool != "" {
			return "", prefix, sub, invalid(fieldSubPool, req.SubPool, "needs --subnet too")
		}
		return space, prefix, sub, nil
	}
	if prefix, err = parseSize(req.Pool, req.V6); err == nil && prefix.IsValid() {
		if req.SubPool != "" {
			return "", prefix, sub, invalid(fieldSubPool, req.SubPool, "needs a --subnet, not only a size (%s)", req.Pool)
		}
		return space, prefix, sub, nil
	}
	if err != nil {
		return "", prefix, sub, err
	}
	if prefix, err = parseSubnet(fieldPool, req.Pool, req.V6); err != nil {
		return "", prefix, sub, err
	}
	if req.SubPool == "" {
		return space, prefix, sub, nil
	}
	if sub, err = parseSubnet(fieldSubPool, req.SubPool, req.V6); err != nil {
		return "", prefix, sub, err
	}
	if !contains(prefix, sub) {
		return "", prefix, sub, invalid(fieldSubPool, req.SubPool, "not inside --subnet %s", prefix)
	}
	return space, prefix, sub, nil
}

// parseSize reads a size-only pool (Docker 29: 0.0.0.0/24, ::/96); the zero
// Prefix means s names a subnet, not a size.
func parseSize(s string, v6 bool) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().IsUnspecified() {
		return netip.Prefix{}, nil
	}
	if p.Addr().Is6() != v6 {
		return netip.Prefix{}, invalid(fieldPool, s, "an %s size where Docker asked for an %s pool", family(p.Addr().Is6()), family(v6))
	}
	if hostBits(p) < 2 || p.Bits() == 0 {
		return netip.Prefix{}, invalid(fieldPool, s, "not a pool size: want /1 to /%d", p.Addr().BitLen()-2)
	}
	return p, nil
}

// newPoolFor checks prefix against the pools and settings of this host,
// reclaiming pools an interrupted `docker network create` left in its way.
func (a *IPAM) newPoolFor(space string, prefix, sub netip.Prefix) (*pool, error) {
	for other := a.overlapping(prefix); other != nil; other = a.overlapping(prefix) {
		if !a.abandoned(other) {
			return nil, a.overlapError(prefix, other)
		}
		if err := a.deletePool(other); err != nil {
			return nil, err
		}
		a.log.WithFields(other.logFields()).Warn("Reclaimed a pool no network uses (its docker network create was interrupted)")
	}
	rng, err := a.allocationRange(prefix, sub)
	if err != nil {
		return nil, err
	}
	return newPool(space, prefix, rng)
}

// overlapError refuses prefix for overlapping other, saying when other
// goes if it looks left behind by an interrupted create.
func (a *IPAM) overlapError(prefix netip.Prefix, other *pool) error {
	reason := fmt.Sprintf("overlaps pool %s (PoolID %s) already on this host", other.prefix, other.id)
	if a.users != nil && !a.users.UsesPool(other.prefix) {
		since := other.since
		if since.IsZero() {
			since = a.started
		}
		reason += fmt.Sprintf("; no network uses it yet: if an interrupted docker network create left it, it is reclaimed from %s", since.Add(a.claimWindow).Format(time.TimeOnly))
	}
	return &Error{Kind: ErrInUse, Field: fieldPool, Value: prefix.String(), Reason: reason}
}

func (a *IPAM) overlapping(prefix netip.Prefix) *pool {
	for _, p := range a.pools {
		if p.prefix.Overlaps(prefix) {
			return p
		}
	}
	return nil
}

// allocationRange picks where containers of pool get addresses: --ip-range
// if given, else this host's LocalRanges entry in the pool, else the pool.
func (a *IPAM) allocationRange(pool, sub netip.Prefix) (netip.Prefix, error) {
	local := pool
	for _, r := range a.localRanges {
		switch {
		case contains(r, pool):
			// This host owns the whole pool.
		case !contains(pool, r):
			// Another pool's block.
		case local != pool:
			return netip.Prefix{}, invalid("LocalRanges", r.String(), "a second block of this host in pool %s (the other is %s); a host allocates from one block per pool", pool, local)
		default:
			local = r
		}
	}
	switch {
	case !sub.IsValid():
		return local, nil
	case contains(local, sub):
		return sub, nil
	}
	return netip.Prefix{}, invalid(fieldSubPool, sub.String(), "outside this host's block %s of pool %s (LocalRanges); other hosts allocate from the rest", local, pool)
}

// carve returns the first subnet of DefaultPools, of the configured length
// or of bits when given, that overlaps no pool of this host.
func (a *IPAM) carve(v6 bool, bits int) (netip.Prefix, error) {
	if bits == 0 {
		bits = a.carveLen[v6]
	}
	var searched []netip.Prefix
	for _, within := range a.defaultPools {
		if within.Addr().Is6() != v6 || within.Bits() > bits {
			continue
		}
		if p, ok := a.firstFreeSubnet(within, bits); ok {
			return p, nil
		}
		searched = append(searched, within)
	}
	if len(searched) == 0 {
		return netip.Prefix{}, &Error{Kind: ErrExhausted, Reason: fmt.Sprintf(
			"no --subnet given and DefaultPools has no %s range to carve a /%d from: give --subnet, or add one to DefaultPools", family(v6), bits)}
	}
	return netip.Prefix{}, &Error{Kind: ErrExhausted, Reason: fmt.Sprintf(
		"no --subnet given and no free %s /%d subnet is left in DefaultPools %v: give --subnet, or add to DefaultPools", family(v6), bits, searched)}
}

func (a *IPAM) firstFreeSubnet(within netip.Prefix, bits int) (netip.Prefix, bool) {
	candidate := netip.PrefixFrom(within.Addr(), bits)
	for within.Contains(candidate.Addr()) {
		other := a.overlapping(candidate)
		if other == nil {
			return candidate, true
		}
		// Skip whichever of the two is larger; what follows it is aligned
		// to bits because the larger one's length is at most bits.
		larger := candidate
		if other.prefix.Bits() < bits {
			larger = other.prefix
		}
		next := lastAddr(larger).Next()
		if !next.IsValid() {
			break
		}
		candidate = netip.PrefixFrom(next, bits)
	}
	return netip.Prefix{}, false
}

// ReleasePool removes the pool and every address allocated in it. A network
// of the driver still on it was never created in Docker's eyes (Docker
// deletes a network before it releases its pool): the driver forgets it.
// Releasing a pool already gone succeeds, so a repeated release does.
func (a *IPAM) ReleasePool(ctx context.Context, req *ipamapi.ReleasePoolRequest) error {
	released, err := a.releasePool(ctx, req.PoolID)
	if err != nil || !released.IsValid() || a.users == nil {
		return err
	}
	// After the lock is let go: the driver calls back into LocalRange.
	a.users.PoolReleased(context.WithoutCancel(ctx), released)
	return nil
}

// releasePool does ReleasePool's part under the lock and returns the pool
// it released, if any.
func (a *IPAM) releasePool(ctx context.Context, id string) (netip.Prefix, error) {
	p, err := a.lockPool(ctx, id)
	if errors.Is(err, ErrUnknownPool) {
		a.log.WithField("pool_id", id).Debug("Pool released again")
		return netip.Prefix{}, nil
	}
	if err != nil {
		return netip.Prefix{}, err
	}
	defer a.unlock()
	if err := a.deletePool(p); err != nil {
		return netip.Prefix{}, fmt.Errorf("release pool %s: %w", p.prefix, err)
	}
	a.log.WithFields(p.logFields()).WithField("allocations", len(p.taken)).Info("Pool released")
	return p.prefix, nil
}

// deletePool removes p and its allocations from the store and memory.
func (a *IPAM) deletePool(p *pool) error {
	err := a.db.Update(func(tx *store.Tx) error {
		for addr := range p.taken {
			if err := tx.Delete(bucketAllocations, allocationKey(p.id, addr)); err != nil {
				return err
			}
		}
		return tx.Delete(bucketPools, p.id)
	})
	if err != nil {
		return err
	}
	delete(a.pools, p.id)
	return nil
}

// lockPool takes the lock and finds the pool with the ID RequestPool
// returned; on error the lock is not held.
func (a *IPAM) lockPool(ctx context.Context, id string) (*pool, error) {
	if err := a.lock(ctx); err != nil {
		return nil, err
	}
	p, err := a.poolByID(id)
	if err != nil {
		a.unlock()
	}
	return p, err
}

func (a *IPAM) poolByID(id string) (*pool, error) {
	if p := a.pools[id]; p != nil {
		return p, nil
	}
	space, prefix, ok := strings.Cut(id, "/")
	if _, err := netip.ParsePrefix(prefix); !ok || err != nil || (space != api.LocalAddressSpace && space != api.GlobalAddressSpace) {
		return nil, invalid(fieldPoolID, id, "not a pool ID of this driver (%s/<subnet>)", api.LocalAddressSpace)
	}
	return nil, &Error{Kind: ErrUnknownPool, Field: fieldPoolID, Value: id, Reason: "no such pool on this host (released already?)"}
}
