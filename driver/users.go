package driver

import (
	"context"
	"net/netip"
	"slices"

	"github.com/sirupsen/logrus"
)

// What the IPAM driver asks the network driver (ipam.Users): the plugin is
// both of Docker's drivers, so the pools and addresses a crash left without
// a network or a container can be told from those in use.

// UsesPool reports whether a network of this driver has pool.
func (d *Driver) UsesPool(prefix netip.Prefix) bool {
	return slices.ContainsFunc(d.state.allNetworks(), func(n networkRecord) bool { return n.hasPool(prefix) })
}

// HoldsAddress reports whether an endpoint of this driver has addr.
func (d *Driver) HoldsAddress(addr netip.Addr) bool {
	_, ok := d.state.holderOf(addr)
	return ok
}

// PoolReleased forgets the networks still on a pool Docker released: Docker
// deletes a network (DeleteNetwork) before it releases its pools, so a
// network still here is one whose CreateNetwork answer Docker never got (the
// plugin was killed after storing it) and rolled back. Without this its
// record would block the subnet on this host, and announce it, for good.
func (d *Driver) PoolReleased(ctx context.Context, released netip.Prefix) {
	for _, n := range d.state.allNetworks() {
		if !n.hasPool(released) {
			continue
		}
		log := d.log.WithFields(logrus.Fields{"network": n.ID, "pool": released})
		// A DeleteNetwork in flight may have deleted it since the look
		// above: then there was nothing to forget.
		deleted, err := d.deleteNetwork(ctx, n.ID)
		if err != nil {
			log.WithError(err).Error("forgetting a network Docker never created")
			continue
		}
		if deleted {
			log.Warn("forgot a network Docker never created (its docker network create was interrupted)")
		}
	}
}

// AddressReleased forgets the endpoints still holding an address Docker
// released: Docker deletes an endpoint before it releases its address, so an
// endpoint still here is one whose CreateEndpoint answer Docker never got
// (and rolled back), or whose DeleteEndpoint failed while Docker went on.
// Without this it would keep the address from the next container and count
// against the route budget for good.
func (d *Driver) AddressReleased(ctx context.Context, addr netip.Addr) {
	ep, ok := d.state.holderOf(addr)
	if !ok {
		return
	}
	log := d.log.WithFields(logrus.Fields{"endpoint": ep.ID, "network": ep.NetworkID, "address": addr})
	// A DeleteEndpoint in flight may have deleted it since the look above.
	deleted, err := d.deleteEndpoint(ctx, ep.ID)
	if err != nil {
		log.WithError(err).Error("forgetting an endpoint Docker no longer has")
		return
	}
	if deleted {
		log.Warn("forgot an endpoint Docker no longer has (its docker run or docker rm was interrupted)")
	}
}
