package driver

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"

	netapi "github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/dockerid"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/failpoint"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

// CreateEndpoint records an endpoint; its link is made at Join, as Docker's
// own ipvlan driver does. Steps: validate, queue the record and hold it in
// memory (under the lock), then wait for the record on disk (unlocked, so
// concurrent starts share one disk sync); nothing in the kernel, so a
// crash leaves either no record or a whole one.
func (d *Driver) CreateEndpoint(ctx context.Context, req *netapi.CreateEndpointRequest) (*netapi.CreateEndpointResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rec, committed, err := d.recordEndpoint(req)
	if err != nil {
		return nil, err
	}
	if committed != nil {
		if err := committed(); err != nil {
			d.unrecordEndpoint(rec)
			return nil, fmt.Errorf("create endpoint %s: %w", dockerid.Short(rec.ID), err)
		}
		d.log.WithFields(logrus.Fields{"network": rec.NetworkID, "endpoint": rec.ID, "addresses": rec.Addresses, "budget_fallback": rec.Fallback}).Info("endpoint created")
	}
	// The addresses came from Docker: answering with any would make Docker
	// roll the endpoint back.
	return &netapi.CreateEndpointResponse{Interface: &netapi.EndpointInterface{}}, nil
}

// recordEndpoint validates a new endpoint, queues its record and holds it
// in memory; committed waits for the record on disk. The same request again
// (its first answer lost in a crash) gets no error and a nil committed.
func (d *Driver) recordEndpoint(req *netapi.CreateEndpointRequest) (rec endpointRecord, committed func() error, err error) {
	d.changes.Lock()
	defer d.changes.Unlock()
	if rec, err = d.newEndpointRecord(req); err != nil {
		return rec, nil, err
	}
	if stored, exists := d.state.endpoint(rec.ID); exists {
		if stored.NetworkID != rec.NetworkID || !slices.Equal(stored.Addresses, rec.Addresses) || !reflect.DeepEqual(stored.Config, rec.Config) {
			return rec, nil, fmt.Errorf("ipvlan-bgp: endpoint %s already exists with other addresses or options", dockerid.Short(rec.ID))
		}
		return rec, nil, nil
	}
	if err := d.checkAddressesFree(rec); err != nil {
		return rec, nil, err
	}
	network, _ := d.state.network(rec.NetworkID)
	if err := d.checkBudget(&rec, network); err != nil {
		return rec, nil, err
	}
	committed = d.db.Write(func(tx *store.Tx) error { return tx.Put(bucketEndpoints, rec.ID, rec) })
	d.state.putEndpoint(rec)
	if rec.Fallback {
		d.announceNetwork(network)
	}
	return rec, committed, nil
}

// unrecordEndpoint forgets an endpoint whose record did not reach the disk.
func (d *Driver) unrecordEndpoint(rec endpointRecord) {
	d.changes.Lock()
	defer d.changes.Unlock()
	d.state.removeEndpoint(rec.ID)
	if network, ok := d.state.network(rec.NetworkID); ok && rec.Fallback {
		d.announceNetwork(network)
	}
}

// checkAddressesFree refuses an address another endpoint holds: two
// containers with one address would split its traffic.
func (d *Driver) checkAddressesFree(rec endpointRecord) error {
	for _, a := range rec.Addresses {
		if other, ok := d.state.holderOf(a.Addr()); ok {
			return optionErr("ip", a.Addr().String(), "endpoint %s of network %s already has it", dockerid.Short(other.ID), dockerid.Short(other.NetworkID))
		}
	}
	return nil
}

// newEndpointRecord validates a CreateEndpoint request against its network.
func (d *Driver) newEndpointRecord(req *netapi.CreateEndpointRequest) (endpointRecord, error) {
	if err := checkDockerID("endpoint", req.EndpointID); err != nil {
		return endpointRecord{}, err
	}
	network, ok := d.state.network(req.NetworkID)
	if !ok {
		return endpointRecord{}, fmt.Errorf("ipvlan-bgp: network %s not found", dockerid.Short(req.NetworkID))
	}
	iface := req.Interface
	if iface == nil {
		iface = &netapi.EndpointInterface{}
	}
	if iface.MacAddress != "" {
		return endpointRecord{}, optionErr("mac-address", iface.MacAddress, "ipvlan interfaces share the parent's MAC address; remove --mac-address")
	}
	cfg, err := d.endpointOptions(network, req.Options)
	if err != nil {
		return endpointRecord{}, err
	}
	rec := endpointRecord{ID: req.EndpointID, NetworkID: network.ID, Config: cfg}
	for _, a := range []struct {
		value string
		is4   bool
	}{{iface.Address, true}, {iface.AddressIPv6, false}} {
		if a.value == "" {
			continue
		}
		addr, err := parseEndpointAddress(a.value, a.is4, network.Pools)
		if err != nil {
			return endpointRecord{}, err
		}
		rec.Addresses = append(rec.Addresses, addr)
	}
	return rec, nil
}

// endpointOptions parses a container's --driver-opt values and checks them
// against its network.
func (d *Driver) endpointOptions(network networkRecord, opts map[string]any) (endpointConfig, error) {
	cfg, err := parseEndpointOptions(opts)
	if err != nil {
		return cfg, err
	}
	if network.Config.Announce != announceHost && (len(cfg.Communities) > 0 || len(cfg.LargeCommunities) > 0) {
		return cfg, optionErr(optCommunities, strings.Join(slices.Concat(cfg.Communities, cfg.LargeCommunities), ","),
			"network %s announces %s, not each container's address (announce=%s)", dockerid.Short(network.ID), network.Config.Announce, network.Config.Announce)
	}
	return cfg, cfg.checkSize(network.Config.communityOptions, func(key string) string { value, _ := opts[key].(string); return value })
}

// parseEndpointAddress reads an address Docker assigned (CIDR) and checks it
// lies in one of the network's pools.
func parseEndpointAddress(value string, want4 bool, pools []pool) (netip.Prefix, error) {
	prefix, err := netip.ParsePrefix(value)
	if err != nil || prefix.Addr().Is4() != want4 || prefix.Addr().Zone() != "" {
		return netip.Prefix{}, optionErr("ip", value, "not an %s address with a prefix length", familyName(want4))
	}
	for _, p := range pools {
		if p.Prefix.Contains(prefix.Addr()) {
			return prefix, nil
		}
	}
	return netip.Prefix{}, optionErr("ip", value, "outside the network's subnets")
}

// DeleteEndpoint removes an endpoint; an unknown one is already gone (Docker
// repeats the call on rollback and at start-up). Step order, and what a
// crash after each step leaves:
//  1. withdraw: the record is kept; Docker repeats the call.
//  2. delete the link if it is still in the host namespace: same.
//  3. queue the record's deletion and forget it in memory (under the
//     lock), then wait for the deletion on disk (unlocked, so concurrent
//     removals share a disk sync); the answer waits for the disk.
func (d *Driver) DeleteEndpoint(ctx context.Context, req *netapi.DeleteEndpointRequest) error {
	if err := checkDockerID("endpoint", req.EndpointID); err != nil {
		return err
	}
	_, err := d.deleteEndpoint(ctx, req.EndpointID)
	return err
}

// deleteEndpoint deletes the endpoint and reports whether there was one to
// delete.
func (d *Driver) deleteEndpoint(ctx context.Context, id string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	rec, committed, err := d.dropEndpoint(id)
	if err != nil || committed == nil {
		return false, err
	}
	if err := committed(); err != nil {
		// The record is still on disk: keep it in memory too, for the
		// repeat Docker sends.
		d.state.putEndpoint(rec)
		return false, fmt.Errorf("delete endpoint %s: %w", dockerid.Short(rec.ID), err)
	}
	d.log.WithFields(logrus.Fields{"network": rec.NetworkID, "endpoint": rec.ID}).Info("endpoint deleted")
	return true, nil
}

// dropEndpoint withdraws an endpoint, deletes its link if still in the
// host, queues the deletion of its record and forgets it; committed waits
// for the deletion on disk, nil if there was no endpoint. The link's
// deletion, the kernel's work, runs outside the lock: concurrent removals
// of different containers need not wait for each other there.
func (d *Driver) dropEndpoint(id string) (rec endpointRecord, committed func() error, err error) {
	d.changes.Lock()
	rec, ok := d.state.endpoint(id)
	if ok {
		d.announce.withdraw(rec.ID)
	}
	d.changes.Unlock()
	if !ok {
		return rec, nil, nil
	}
	if err := d.links.remove(childName(rec.ID)); err != nil {
		return rec, nil, fmt.Errorf("delete endpoint %s: %w", dockerid.Short(rec.ID), err)
	}
	failpoint.Hit("NetworkDriver.DeleteEndpoint:withdrawn")
	d.changes.Lock()
	defer d.changes.Unlock()
	committed = d.db.Write(func(tx *store.Tx) error { return tx.Delete(bucketEndpoints, rec.ID) })
	d.state.removeEndpoint(rec.ID)
	d.traffic.forget(rec.ID)
	if network, ok := d.state.network(rec.NetworkID); ok && rec.Fallback {
		d.announceNetwork(network)
	}
	return rec, committed, nil
}

// EndpointInfo is what `docker network inspect` and `docker inspect` show
// under the endpoint's driver data.
func (d *Driver) EndpointInfo(ctx context.Context, req *netapi.InfoRequest) (*netapi.InfoResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rec, ok := d.state.endpoint(req.EndpointID)
	if !ok {
		return nil, fmt.Errorf("ipvlan-bgp: endpoint %s not found", dockerid.Short(req.EndpointID))
	}
	view := d.endpointView(rec)
	network, _ := d.state.network(rec.NetworkID)
	addresses := make([]string, len(view.Addresses))
	for i, a := range view.Addresses {
		addresses[i] = a.String()
	}
	return &netapi.InfoResponse{Value: map[string]string{
		"addresses": strings.Join(addresses, ","),
		"interface": view.Interface,
		"parent":    network.Parent,
		"joined":    strconv.FormatBool(view.Joined),
		"announce":  string(network.Config.Announce),
		"announced": describeAdverts(view.Announced),
		// true: past the route budget, reached through the subnet.
		"budget_fallback": strconv.FormatBool(view.Fallback),
	}}, nil
}

// describeAdverts renders adverts as "10.0.0.5/32 [65000:1 65000:1:2], ...".
func describeAdverts(adverts []route.Advert) string {
	if len(adverts) == 0 {
		return "nothing"
	}
	parts := make([]string, len(adverts))
	for i, a := range adverts {
		parts[i] = a.Prefix.String()
		if tags := slices.Concat(a.Communities, a.LargeCommunities); len(tags) > 0 {
			parts[i] += " [" + strings.Join(tags, " ") + "]"
		}
	}
	return strings.Join(parts, ", ")
}
