package driver

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/dockerid"
)

// Reconcile squares the kernel and the BGP speaker with the store at
// start-up. The plugin calls it before the speaker opens its sessions: with
// graceful restart, peers drop whatever has not been announced again by
// End-of-RIB. Steps:
//  1. recreate the plugin's parents (VLAN, dummy) of stored networks that
//     went missing, as after a reboot;
//  2. delete the plugin's parents no stored network uses (a crash inside
//     CreateNetwork or DeleteNetwork);
//  3. delete the plugin's ipvlan links left in the host namespace that no
//     joined endpoint owns; a joined endpoint's link there is kept, Docker
//     is about to move it or roll it back;
//  4. announce every announce=subnet network, and every joined endpoint
//     whose link is in a container (watching those whose link is still in
//     the host); a joined endpoint whose link is nowhere (a reboot, a
//     container that died while the plugin was down) is not announced.
//
// A failed step does not stop the others; all failures are returned.
func (d *Driver) Reconcile(ctx context.Context) error {
	d.changes.Lock()
	defer d.changes.Unlock()
	var errs []error
	for _, step := range []func() error{d.restoreParents, d.removeUnusedParents, d.removeOrphanLinks} {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		errs = append(errs, step())
	}
	d.reannounce()
	return errors.Join(errs...)
}

func (d *Driver) restoreParents() error {
	var errs []error
	for _, rec := range d.state.allNetworks() {
		log := d.log.WithFields(logrus.Fields{"network": rec.ID, "parent": rec.Parent})
		if rec.ParentOwned == parentExisting {
			if present, err := d.links.inHost(rec.Parent); err == nil && !present {
				log.Warn("the network's parent interface is missing: its containers cannot join")
			}
			continue
		}
		created, err := d.links.ensureOwnedParent(rec)
		if err != nil {
			errs = append(errs, fmt.Errorf("restore parent of network %s: %w", dockerid.Short(rec.ID), err))
			continue
		}
		if created {
			log.Info("recreated the plugin's parent link")
		}
	}
	return errors.Join(errs...)
}

func (d *Driver) removeUnusedParents() error {
	names, err := d.links.ownedParents()
	if err != nil {
		return err
	}
	return d.removeLinks(names, d.parentInUse, "deleted a parent link no network uses")
}

func (d *Driver) removeOrphanLinks() error {
	names, err := d.links.ownedChildren()
	if err != nil {
		return err
	}
	joined := map[string]bool{}
	for _, ep := range d.state.allEndpoints() {
		joined[childName(ep.ID)] = ep.Joined
	}
	return d.removeLinks(names, func(name string) bool { return joined[name] }, "deleted an ipvlan link no joined endpoint owns")
}

// removeLinks deletes the named links keep does not claim.
func (d *Driver) removeLinks(names []string, keep func(string) bool, why string) error {
	var errs []error
	for _, name := range names {
		if keep(name) {
			continue
		}
		if err := d.links.remove(name); err != nil {
			errs = append(errs, err)
			continue
		}
		d.log.WithField("link", name).Info(why)
	}
	return errors.Join(errs...)
}
