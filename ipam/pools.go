package ipam

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

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

// RequestPool registers the network's subnet (or carves one from
// DefaultPools) and returns its first address as the gateway, reserved, so
// Docker never asks for one from this host's block.
func (a *IPAM) RequestPool(ctx context.Context, req *ipamapi.RequestPoolRequest) (*ipamapi.RequestPoolResponse, error) {
	space, prefix, sub, err := parsePoolRequest(req)
	if err != nil {
		return nil, err
	}
	if err := a.lock(ctx); err != nil {
		return nil, err
	}
	defer a.unlock()
	if !prefix.IsValid() {
		if prefix, err = a.carve(req.V6); err != nil {
			return nil, err
		}
	}
	p, err := a.newPoolFor(space, prefix, sub)
	if err != nil {
		return nil, err
	}
	err = a.db.Update(func(tx *store.Tx) error {
		if err := tx.Put(bucketPools, p.id, p.record()); err != nil {
			return err
		}
		return tx.Put(bucketAllocations, allocationKey(p.id, p.gateway), allocationRecord{PoolID: p.id, Address: p.gateway, Gateway: true})
	})
	if err != nil {
		return nil, fmt.Errorf("save pool %s: %w", p.prefix, err)
	}
	p.take(p.gateway)
	a.pools[p.id] = p
	a.log.WithFields(p.logFields()).Info("Pool created")
	return &ipamapi.RequestPoolResponse{
		PoolID: p.id,
		Pool:   p.prefix.String(),
		Data:   map[string]string{labelGateway: netip.PrefixFrom(p.gateway, p.prefix.Bits()).String()},
	}, nil
}

// parsePoolRequest checks everything about req that does not depend on
// other pools. prefix is the zero Prefix when a pool is to be carved.
func parsePoolRequest(req *ipamapi.RequestPoolRequest) (space string, prefix, sub netip.Prefix, err error) {
	switch req.AddressSpace {
	case "", LocalAddressSpace:
		space = LocalAddressSpace
	case GlobalAddressSpace:
		space = GlobalAddressSpace
	default:
		return "", prefix, sub, invalid(fieldSpace, req.AddressSpace, "not an address space of this driver (%s or %s)", LocalAddressSpace, GlobalAddressSpace)
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

// newPoolFor checks prefix against the pools and settings of this host.
func (a *IPAM) newPoolFor(space string, prefix, sub netip.Prefix) (*pool, error) {
	if other := a.overlapping(prefix); other != nil {
		return nil, &Error{Kind: ErrInUse, Field: fieldPool, Value: prefix.String(),
			Reason: fmt.Sprintf("overlaps pool %s (PoolID %s) already on this host", other.prefix, other.id)}
	}
	rng, err := a.allocationRange(prefix, sub)
	if err != nil {
		return nil, err
	}
	return newPool(space, prefix, rng)
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

// carve returns the first subnet of the configured length in DefaultPools
// that overlaps no pool of this host.
func (a *IPAM) carve(v6 bool) (netip.Prefix, error) {
	bits := a.carveLen[v6]
	var searched []netip.Prefix
	for _, within := range a.defaultPools {
		if within.Addr().Is6() != v6 {
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

// ReleasePool removes the pool and every address allocated in it.
func (a *IPAM) ReleasePool(ctx context.Context, req *ipamapi.ReleasePoolRequest) error {
	p, err := a.lockPool(ctx, req.PoolID)
	if err != nil {
		return err
	}
	defer a.unlock()
	err = a.db.Update(func(tx *store.Tx) error {
		for addr := range p.taken {
			if err := tx.Delete(bucketAllocations, allocationKey(p.id, addr)); err != nil {
				return err
			}
		}
		return tx.Delete(bucketPools, p.id)
	})
	if err != nil {
		return fmt.Errorf("release pool %s: %w", p.prefix, err)
	}
	delete(a.pools, p.id)
	a.log.WithFields(p.logFields()).WithField("allocations", len(p.taken)).Info("Pool released")
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
	if _, err := netip.ParsePrefix(prefix); !ok || err != nil || (space != LocalAddressSpace && space != GlobalAddressSpace) {
		return nil, invalid(fieldPoolID, id, "not a pool ID of this driver (%s/<subnet>)", LocalAddressSpace)
	}
	return nil, &Error{Kind: ErrUnknownPool, Field: fieldPoolID, Value: id, Reason: "no such pool on this host (released already?)"}
}
