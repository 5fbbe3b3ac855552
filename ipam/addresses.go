package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"

	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

const (
	fieldAddress  = "requested address"
	fieldGateway  = "--gateway"
	fieldReleased = "released address"
)

// RequestAddress allocates a container address (the one asked for, or the
// next free one of the allocation range), or reserves the gateway.
// The answer carries the pool's prefix length. Options other than the
// gateway marker are ignored: Docker fills them, not the user.
func (a *IPAM) RequestAddress(ctx context.Context, req *ipamapi.RequestAddressRequest) (*ipamapi.RequestAddressResponse, error) {
	isGateway := req.Options[optRequestAddressType] == labelGateway
	field := fieldAddress
	if isGateway {
		field = fieldGateway
	}
	var want netip.Addr
	if req.Address != "" {
		var err error
		if want, err = parseAddress(field, req.Address); err != nil {
			return nil, err
		}
	}
	p, err := a.lockPool(ctx, req.PoolID)
	if err != nil {
		return nil, err
	}
	var got netip.Addr
	if isGateway {
		got, err = a.reserveGateway(p, want)
		a.unlock()
	} else {
		got, err = a.allocate(p, want)
	}
	if err != nil {
		return nil, err
	}
	return &ipamapi.RequestAddressResponse{Address: netip.PrefixFrom(got, p.prefix.Bits()).String()}, nil
}

// allocate gives a container want, or the next free address when want is
// the zero Addr. Asking again for an address a container was given before a
// crash, and that no endpoint holds, gets it again: the answer was lost.
//
// Called under the lock, which it lets go of: the address is taken in
// memory and its record queued while locked, so no other caller gets it and
// records land in the order they were made, and the disk sync is waited
// for unlocked, so concurrent allocations share it (store.Write).
func (a *IPAM) allocate(p *pool, want netip.Addr) (netip.Addr, error) {
	explicit := want.IsValid()
	if explicit && a.lostAnswer(p, want) {
		a.unlock()
		a.log.WithFields(p.logFields()).WithField("address", want).Info("Address requested again: the same answer")
		return want, nil
	}
	var err error
	if explicit {
		err = p.checkWanted(fieldAddress, want)
	} else {
		want, err = p.nextFree()
	}
	if err != nil {
		a.unlock()
		return netip.Addr{}, err
	}
	how := allocation{container: a.users != nil && a.users.UsesPool(p.prefix), since: time.Now()}
	rec := allocationRecord{PoolID: p.id, Address: want, Container: how.container}
	committed := a.db.Write(func(tx *store.Tx) error { return tx.Put(bucketAllocations, allocationKey(p.id, want), rec) })
	p.take(want, how)
	cursor := p.cursor
	if !explicit {
		p.cursor = want.Next()
	}
	a.unlock()
	if err := committed(); err != nil {
		a.undoTake(p, want, cursor)
		return netip.Addr{}, fmt.Errorf("save allocation of %s in pool %s: %w", want, p.prefix, err)
	}
	a.log.WithFields(p.logFields()).WithField("address", want).Debug("Address allocated")
	return want, nil
}

// undoTake frees an address whose record did not reach the disk, and puts
// the cursor back if nothing moved it since, unless the pool went.
func (a *IPAM) undoTake(p *pool, addr, cursor netip.Addr) {
	_ = a.lock(context.Background())
	defer a.unlock()
	if a.pools[p.id] != p {
		return
	}
	p.free(addr)
	if p.cursor == addr.Next() {
		p.cursor = cursor
	}
}

// lostAnswer reports whether addr was given to a container in an answer a
// crash may have lost: taken for a container by an earlier run of the
// plugin and held by no endpoint. (The user repeats the command only once
// Docker gave up on it, so no endpoint for it is still on its way.)
func (a *IPAM) lostAnswer(p *pool, addr netip.Addr) bool {
	how, taken := p.taken[addr]
	return taken && how.container && how.since.IsZero() && a.users != nil && !a.users.HoldsAddress(addr)
}

// reserveGateway reserves the gateway Docker asks for: an explicit
// --gateway anywhere in the pool (it may lie outside this host's block), or
// the pool's first address. A network asks once; asking again gets the
// same answer.
func (a *IPAM) reserveGateway(p *pool, want netip.Addr) (netip.Addr, error) {
	switch {
	case !want.IsValid() && p.gateway.IsValid():
		return p.gateway, nil
	case !want.IsValid():
		want = p.defaultGateway()
	case want == p.gateway:
		return want, nil
	case !p.prefix.Contains(want):
		return netip.Addr{}, invalid(fieldGateway, want.String(), "outside pool %s", p.prefix)
	}
	if err := p.checkFree(fieldGateway, want); err != nil {
		return netip.Addr{}, err
	}
	old := p.gateway
	err := a.db.Update(func(tx *store.Tx) error {
		if old.IsValid() {
			if err := tx.Delete(bucketAllocations, allocationKey(p.id, old)); err != nil {
				return err
			}
		}
		return tx.Put(bucketAllocations, allocationKey(p.id, want), allocationRecord{PoolID: p.id, Address: want, Gateway: true})
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("save gateway %s of pool %s: %w", want, p.prefix, err)
	}
	if old.IsValid() {
		p.free(old)
	}
	p.take(want, allocation{})
	p.gateway = want
	a.log.WithFields(p.logFields()).Info("Gateway reserved")
	return want, nil
}

// ReleaseAddress frees a container address. Releasing the gateway succeeds
// and keeps it reserved: Docker releases it only while removing the network,
// and ReleasePool follows. Releasing a free address succeeds, so a repeated
// release does. An endpoint of the driver still holding the address was
// never created in Docker's eyes, or its delete failed (Docker deletes an
// endpoint before it releases its address): the driver forgets it.
func (a *IPAM) ReleaseAddress(ctx context.Context, req *ipamapi.ReleaseAddressRequest) error {
	addr, err := parseAddress(fieldReleased, req.Address)
	if err != nil {
		return err
	}
	released, err := a.releaseAddress(ctx, req.PoolID, addr)
	if err != nil || !released || a.users == nil {
		return err
	}
	// After the lock is let go: the driver may call back.
	a.users.AddressReleased(context.WithoutCancel(ctx), addr)
	return nil
}

// undoFree takes back an address whose release did not reach the disk,
// unless another caller took it meanwhile (its record then replaced the
// one left) or the pool went.
func (a *IPAM) undoFree(p *pool, addr netip.Addr, how allocation) {
	_ = a.lock(context.Background())
	defer a.unlock()
	if a.pools[p.id] == p && !p.isTaken(addr) {
		p.take(addr, how)
	}
}

// releaseAddress does ReleaseAddress's part and reports whether a
// container address was released. As in allocate, the record's deletion is
// queued under the lock and waited for after it.
func (a *IPAM) releaseAddress(ctx context.Context, poolID string, addr netip.Addr) (bool, error) {
	p, err := a.lockPool(ctx, poolID)
	if errors.Is(err, ErrUnknownPool) {
		return false, nil // released with its pool
	}
	if err != nil {
		return false, err
	}
	switch {
	case !p.prefix.Contains(addr):
		a.unlock()
		return false, invalid(fieldReleased, addr.String(), "outside pool %s", p.prefix)
	case addr == p.gateway:
		a.unlock()
		return false, nil
	case !p.isTaken(addr):
		a.unlock()
		a.log.WithFields(p.logFields()).WithField("address", addr).Debug("Address released again")
		return false, nil
	}
	committed := a.db.Write(func(tx *store.Tx) error { return tx.Delete(bucketAllocations, allocationKey(p.id, addr)) })
	how := p.taken[addr]
	p.free(addr)
	a.unlock()
	if err := committed(); err != nil {
		a.undoFree(p, addr, how)
		return false, fmt.Errorf("release %s in pool %s: %w", addr, p.prefix, err)
	}
	a.log.WithFields(p.logFields()).WithField("address", addr).Debug("Address released")
	return true, nil
}
