package ipam

import (
	"context"
	"net/netip"
	"time"

	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

// What a crash leaves behind, and how it is reclaimed.
//
// A call whose answer Docker never got (the plugin was killed after it
// committed) leaves a pool no network uses, an address no container holds,
// or a network or endpoint record Docker does not know. Docker's retry of
// such a call arrives empty and is refused (package api), so Docker rolls
// back or gives up, and the user repeats the command. The plugin is both of
// Docker's drivers, so the network driver can say which pools its networks
// use and which addresses its endpoints hold (Users):
//   - the same RequestPool again after a restart gets the same pool, if no
//     network uses it; an overlapping one that no network uses, without
//     containers, past the claim window, is reclaimed for a new request;
//   - Docker releases a pool only after deleting its network, and an
//     address only after deleting its endpoint: a network or endpoint of
//     the driver still on a released pool or address is one whose create
//     Docker rolled back (or whose delete failed), and the driver forgets
//     it (PoolReleased, AddressReleased);
//   - an address given to a container but held by no endpoint past the
//     claim window is released by Sweep.
//
// The claim window (Config.ClaimWindow) covers the time between Docker's
// calls of one command (RequestPool and CreateNetwork, RequestAddress and
// CreateEndpoint): Docker gives each call 30 s, and after a restart the
// command's next call may still arrive. Nothing younger than the window, or
// loaded at start-up less than the window ago, is reclaimed.
const defaultClaimWindow = time.Minute

// Users is the network driver as the IPAM driver asks it what its networks
// and endpoints use.
type Users interface {
	// UsesPool reports whether a network of the driver has pool.
	UsesPool(pool netip.Prefix) bool
	// HoldsAddress reports whether an endpoint of the driver has addr.
	HoldsAddress(addr netip.Addr) bool
	// PoolReleased tells the driver Docker released pool: a network of the
	// driver still holding it was never created in Docker's eyes.
	PoolReleased(ctx context.Context, pool netip.Prefix)
	// AddressReleased tells the driver Docker released addr: an endpoint
	// of the driver still holding it is gone in Docker's eyes.
	AddressReleased(ctx context.Context, addr netip.Addr)
}

// SetUsers wires the network driver in. Until it is set nothing is
// reclaimed.
func (a *IPAM) SetUsers(u Users) {
	_ = a.lock(context.Background())
	defer a.unlock()
	a.users = u
}

// settled reports whether something made at since (zero: loaded at
// start-up) is past the claim window.
func (a *IPAM) settled(since time.Time) bool {
	if since.IsZero() {
		since = a.started
	}
	return time.Since(since) > a.claimWindow
}

// abandoned reports whether p is left over from an interrupted `docker
// network create`: no network uses it, no container address is in it, and
// it is past the claim window. Called under the lock.
func (a *IPAM) abandoned(p *pool) bool {
	if a.users == nil || a.users.UsesPool(p.prefix) || !a.settled(p.since) {
		return false
	}
	for _, how := range p.taken {
		if how.container {
			return false
		}
	}
	return true
}

// Sweep releases the container addresses no endpoint holds past the claim
// window: addresses whose RequestAddress answer a crash lost, or whose
// ReleaseAddress Docker never sent (Docker itself was killed). The plugin
// calls it every SweepEvery.
func (a *IPAM) Sweep(ctx context.Context) error {
	if err := a.lock(ctx); err != nil {
		return err
	}
	defer a.unlock()
	if a.users == nil {
		return nil
	}
	type lost struct {
		p    *pool
		addr netip.Addr
	}
	var found []lost
	for _, p := range a.pools {
		for addr, how := range p.taken {
			if how.container && a.settled(how.since) && !a.users.HoldsAddress(addr) {
				found = append(found, lost{p, addr})
			}
		}
	}
	if len(found) == 0 {
		return nil
	}
	err := a.db.Update(func(tx *store.Tx) error {
		for _, l := range found {
			if err := tx.Delete(bucketAllocations, allocationKey(l.p.id, l.addr)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, l := range found {
		l.p.free(l.addr)
		a.log.WithFields(l.p.logFields()).WithField("address", l.addr).
			Warn("Released an address no container holds (its docker run was interrupted)")
	}
	return nil
}

// SweepEvery is how often the plugin should call Sweep: often enough that
// a leftover goes within two claim windows.
func (a *IPAM) SweepEvery() time.Duration { return max(a.claimWindow/2, time.Second) }
