package driver

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	netapi "github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/dockerid"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/failpoint"
	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

// CreateNetwork records a network and readies its parent. Step order, and
// what a crash after each step leaves:
//  1. parse and check against the other networks: nothing changed yet.
//  2. find or create the parent (a created one carries ownerAlias): an owned
//     parent no stored network uses, which Reconcile deletes.
//  3. store the record (step 2 is undone if this fails).
//  4. memory, then announce the subnet (announce=subnet): Reconcile
//     re-announces every stored network, so a lost announcement comes back.
func (d *Driver) CreateNetwork(ctx context.Context, req *netapi.CreateNetworkRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rec, err := newNetworkRecord(req)
	if err != nil {
		return err
	}
	d.changes.Lock()
	defer d.changes.Unlock()
	if stored, exists := d.state.network(rec.ID); exists {
		return d.createAgain(stored, rec)
	}
	if err := d.checkConflicts(rec); err != nil {
		return err
	}
	if err := d.checkExport(rec); err != nil {
		return err
	}
	parent, owned, created, err := d.links.resolveParent(rec.ID, rec.Config)
	if err != nil {
		return err
	}
	rec.Parent, rec.ParentOwned = parent, owned
	failpoint.Hit("NetworkDriver.CreateNetwork:parent-ready")
	err = d.checkParentMTU(rec)
	if err == nil {
		err = d.db.Update(func(tx *store.Tx) error { return tx.Put(bucketNetworks, rec.ID, rec) })
	}
	if err != nil {
		if created {
			d.undo("delete parent", d.links.remove(parent), logrus.Fields{"network": rec.ID, "parent": parent})
		}
		return err
	}
	d.state.putNetwork(rec)
	d.announceNetwork(rec)
	d.log.WithFields(logrus.Fields{"network": rec.ID, "parent": parent, "mode": rec.Config.Mode, "announce": rec.Config.Announce}).Info("network created")
	d.warnNoLocalRange(rec)
	return nil
}

// createAgain answers a CreateNetwork for a network already stored: the
// same request again (its first answer was lost in a crash) succeeds, with
// the parent made again if it went missing; another one is an error.
func (d *Driver) createAgain(stored, rec networkRecord) error {
	if !reflect.DeepEqual(stored.Config, rec.Config) || !slices.Equal(stored.Pools, rec.Pools) {
		return fmt.Errorf("ipvlan-bgp: network %s already exists with other options or subnets", dockerid.Short(rec.ID))
	}
	if stored.ParentOwned != parentExisting {
		if _, err := d.links.ensureOwnedParent(stored); err != nil {
			return err
		}
	}
	d.log.WithField("network", rec.ID).Info("network created again: the same request as before")
	return nil
}

// newNetworkRecord parses a CreateNetwork request into a record, touching
// nothing.
func newNetworkRecord(req *netapi.CreateNetworkRequest) (networkRecord, error) {
	if err := checkDockerID("network", req.NetworkID); err != nil {
		return networkRecord{}, err
	}
	cfg, err := parseNetworkOptions(req.Options)
	if err != nil {
		return networkRecord{}, err
	}
	if cfg.Parent == "" && isSwarmID(req.NetworkID) {
		// Swarm drops -o, --subnet and --ipam-driver given to a swarm
		// network of a local-scope driver; without a config-only network
		// every node would get an internal network of its own, its tasks
		// unreachable and numbered alike by Docker's default IPAM.
		return networkRecord{}, optionErr(optParent, "",
			"a swarm network needs one: create it with --config-from a --config-only network made on every node with -o parent and --ipam-driver ipvlan-bgp (Swarm ignores the options of a --scope swarm network of this driver)")
	}
	v4, err := parsePools(poolsOf(req.IPv4Data), true)
	if err != nil {
		return networkRecord{}, err
	}
	v6, err := parsePools(poolsOf(req.IPv6Data), false)
	if err != nil {
		return networkRecord{}, err
	}
	if len(v6) > 0 && cfg.MTU != 0 && cfg.MTU < minMTU6 {
		return networkRecord{}, optionErr(optMTU, fmt.Sprint(cfg.MTU), "IPv6 needs an MTU of at least %d", minMTU6)
	}
	return networkRecord{ID: req.NetworkID, Config: cfg, Pools: append(v4, v6...)}, nil
}

func poolsOf(data []*netapi.IPAMData) []poolData {
	var out []poolData
	for _, d := range data {
		if d != nil {
			out = append(out, poolData{Pool: d.Pool, Gateway: d.Gateway})
		}
	}
	return out
}

// checkConflicts refuses a subnet another network on this host already has,
// and a parent another network drives in another ipvlan mode or flag (the
// kernel keeps one mode per parent: a second one would silently switch the
// first network's containers).
func (d *Driver) checkConflicts(rec networkRecord) error {
	parent, _ := parentOf(rec.ID, rec.Config)
	for _, other := range d.state.allNetworks() {
		for _, p := range rec.Pools {
			for _, q := range other.Pools {
				if p.Prefix.Overlaps(q.Prefix) {
					return optionErr("subnet", p.Prefix.String(), "overlaps %s of network %s on this host", q.Prefix, dockerid.Short(other.ID))
				}
			}
		}
		if other.Parent != parent {
			continue
		}
		if other.Config.Mode != rec.Config.Mode {
			return optionErr(optMode, string(rec.Config.Mode), "network %s uses parent %s with ipvlan_mode=%s, and network %s cannot use another mode on it",
				dockerid.Short(other.ID), parent, other.Config.Mode, dockerid.Short(rec.ID))
		}
		if other.Config.Flag != rec.Config.Flag {
			return optionErr(optFlag, string(rec.Config.Flag), "network %s uses parent %s with ipvlan_flag=%s, and network %s cannot use another flag on it",
				dockerid.Short(other.ID), parent, other.Config.Flag, dockerid.Short(rec.ID))
		}
	}
	return nil
}

// checkParentMTU refuses an MTU the parent cannot carry: the kernel would
// only say so at the first Join.
func (d *Driver) checkParentMTU(rec networkRecord) error {
	if rec.Config.MTU == 0 {
		return nil
	}
	parentMTU, err := d.links.mtu(rec.Parent)
	if err != nil {
		return err
	}
	if rec.Config.MTU > parentMTU {
		return optionErr(optMTU, fmt.Sprint(rec.Config.MTU), "above the MTU of parent %s (%d)", rec.Parent, parentMTU)
	}
	return nil
}

// DeleteNetwork removes a network; an unknown one is already gone. Step
// order, and what a crash after each step leaves:
//  1. withdraw the network's and its endpoints' announcements: the record
//     is kept, so Reconcile announces again, matching Docker, which keeps a
//     network whose delete failed.
//  2. delete links of endpoints Docker never deleted: records kept, a repeat
//     does the rest.
//  3. delete the network's and its endpoints' records in one transaction.
//  4. memory, then delete an owned parent no other network uses: an owned
//     parent no network uses, which Reconcile deletes.
func (d *Driver) DeleteNetwork(ctx context.Context, req *netapi.DeleteNetworkRequest) error {
	if err := checkDockerID("network", req.NetworkID); err != nil {
		return err
	}
	_, err := d.deleteNetwork(ctx, req.NetworkID)
	return err
}

// deleteNetwork deletes the network and its endpoints, and reports whether
// there was one to delete.
func (d *Driver) deleteNetwork(ctx context.Context, id string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	d.changes.Lock()
	defer d.changes.Unlock()
	rec, ok := d.state.network(id)
	if !ok {
		return false, nil
	}
	endpoints := d.state.endpointsOf(rec.ID)
	d.announce.withdraw(rec.ID)
	for _, ep := range endpoints {
		d.announce.withdraw(ep.ID)
		if err := d.links.remove(childName(ep.ID)); err != nil {
			return false, fmt.Errorf("delete network %s: %w", dockerid.Short(rec.ID), err)
		}
	}
	failpoint.Hit("NetworkDriver.DeleteNetwork:withdrawn")
	err := d.db.Update(func(tx *store.Tx) error {
		for _, ep := range endpoints {
			if err := tx.Delete(bucketEndpoints, ep.ID); err != nil {
				return err
			}
		}
		return tx.Delete(bucketNetworks, rec.ID)
	})
	if err != nil {
		return false, fmt.Errorf("delete network %s: %w", dockerid.Short(rec.ID), err)
	}
	d.state.removeNetwork(rec.ID)
	d.log.WithFields(logrus.Fields{"network": rec.ID, "stale_endpoints": len(endpoints)}).Info("network deleted")
	return true, d.releaseParent(rec)
}

// releaseParent deletes a parent the plugin created once no network uses
// it.
func (d *Driver) releaseParent(rec networkRecord) error {
	if rec.ParentOwned == parentExisting || d.parentInUse(rec.Parent) {
		return nil
	}
	if err := d.links.remove(rec.Parent); err != nil {
		return fmt.Errorf("delete parent %s of network %s: %w", rec.Parent, dockerid.Short(rec.ID), err)
	}
	d.log.WithFields(logrus.Fields{"network": rec.ID, "parent": rec.Parent}).Info("deleted the plugin's parent link")
	return nil
}

func (d *Driver) parentInUse(parent string) bool {
	for _, n := range d.state.allNetworks() {
		if n.Parent == parent {
			return true
		}
	}
	return false
}
