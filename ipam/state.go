package ipam

import (
	"fmt"
	"net/netip"

	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

// Buckets: one record per pool, keyed by PoolID, and one small record per
// allocated address, so an allocation writes a few dozen bytes instead of
// rewriting its pool.
const (
	bucketPools       = "pools"
	bucketAllocations = "allocations"
)

// poolRecord keeps the allocation range a pool was created with: a later
// change of LocalRanges applies to new pools, not to addresses handed out.
type poolRecord struct {
	AddressSpace string       `json:"address_space"`
	Pool         netip.Prefix `json:"pool"`
	Range        netip.Prefix `json:"range"`
}

type allocationRecord struct {
	PoolID    string     `json:"pool_id"`
	Address   netip.Addr `json:"address"`
	Gateway   bool       `json:"gateway,omitempty"`
	Container bool       `json:"container,omitempty"` // allocation.container
}

func allocationKey(poolID string, a netip.Addr) string { return poolID + " " + a.String() }

func (p *pool) record() poolRecord {
	return poolRecord{AddressSpace: p.space, Pool: p.prefix, Range: p.rng}
}

func (p *pool) logFields() logrus.Fields {
	fields := logrus.Fields{"pool": p.prefix, "range": p.rng}
	if p.gateway.IsValid() {
		fields["gateway"] = p.gateway
	}
	return fields
}

// load rebuilds the pools from the store. Allocations whose pool is gone
// (impossible short of a hand-edited file) are removed rather than left to
// come back if the pool is created again.
func (a *IPAM) load() error {
	var orphans []string
	err := a.db.View(func(tx *store.Tx) error {
		if err := tx.ForEach(bucketPools, a.loadPool); err != nil {
			return err
		}
		return tx.ForEach(bucketAllocations, func(key string, decode func(any) error) error {
			var rec allocationRecord
			if err := decode(&rec); err != nil {
				return err
			}
			p := a.pools[rec.PoolID]
			if p == nil {
				orphans = append(orphans, key)
				return nil
			}
			if err := p.restore(rec); err != nil {
				return fmt.Errorf("allocation record %q: %w: %w", key, store.ErrCorrupt, err)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, p := range a.pools {
		p.cursor = p.afterHighest()
	}
	if len(orphans) > 0 {
		a.log.WithField("keys", orphans).Warn("Removing allocations of pools that no longer exist")
		return a.db.Update(func(tx *store.Tx) error {
			for _, key := range orphans {
				if err := tx.Delete(bucketAllocations, key); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return nil
}

func (a *IPAM) loadPool(key string, decode func(any) error) error {
	var rec poolRecord
	if err := decode(&rec); err != nil {
		return err
	}
	if problem := prefixProblem(rec.Pool); problem != "" {
		return fmt.Errorf("pool record %q: %w: pool %s", key, store.ErrCorrupt, problem)
	}
	p, err := newPool(rec.AddressSpace, rec.Pool, rec.Range)
	if err == nil && (p.id != key || !contains(rec.Pool, rec.Range)) {
		err = fmt.Errorf("range %s and ID do not match pool %s", rec.Range, rec.Pool)
	}
	if err != nil {
		return fmt.Errorf("pool record %q: %w: %w", key, store.ErrCorrupt, err)
	}
	a.pools[p.id] = p
	return nil
}

// restore puts back one stored allocation.
func (p *pool) restore(rec allocationRecord) error {
	switch {
	case !p.prefix.Contains(rec.Address) || p.isSubnetReserved(rec.Address):
		return fmt.Errorf("address %s cannot be allocated in pool %s", rec.Address, p.prefix)
	case rec.Gateway && p.gateway.IsValid():
		return fmt.Errorf("second gateway %s in pool %s", rec.Address, p.prefix)
	case rec.Gateway:
		p.gateway = rec.Address
	case !p.rng.Contains(rec.Address):
		return fmt.Errorf("address %s is outside the allocation range %s", rec.Address, p.rng)
	}
	p.take(rec.Address, allocation{container: rec.Container})
	return nil
}

// afterHighest is where the cursor resumes after a restart: past the highest
// container address, so recently released ones are not reused first.
func (p *pool) afterHighest() netip.Addr {
	highest := netip.Addr{}
	for a := range p.taken {
		if a != p.gateway && p.rng.Contains(a) && a.Compare(highest) > 0 {
			highest = a
		}
	}
	if !highest.IsValid() {
		return p.rng.Addr()
	}
	return highest.Next()
}
