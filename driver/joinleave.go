package driver

import (
	"context"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"time"

	netapi "github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/api"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/failpoint"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

const (
	// containerIfPrefix is what Docker renames the link to in the container
	// (eth0, eth1, ...).
	containerIfPrefix = "eth"
	// routeConnected is libnetwork's types.CONNECTED: a route through the
	// interface with no next hop ("default dev eth0").
	routeConnected = 1
	// movePoll is how often a watcher looks whether Docker has moved a
	// joined endpoint's link out of the host namespace.
	movePoll = 10 * time.Millisecond
	// moveSlowPoll is how often it looks once moveWait has passed.
	moveSlowPoll = time.Second
)

// moveWait is how long a watcher looks every movePoll. Docker moves the
// link right after Join answers, within milliseconds on an idle host; on a
// loaded one it has taken over 40 s (swarm tasks in the lab's emulated VM,
// which never got announced while the watch ended after 30 s). The watch
// goes on, every moveSlowPoll, until the link moves or the endpoint is
// withdrawn (Leave, DeleteEndpoint): a link Docker never moves belongs to a
// join that failed, which Docker rolls back with Leave. A variable: tests
// shorten it.
var moveWait = 30 * time.Second

// Join creates the endpoint's ipvlan link in the host namespace; Docker
// moves it into the container. Step order, and what a crash after each step
// leaves:
//  1. validate: nothing changed.
//  2. delete a link left by an earlier Join of this endpoint (rolled back,
//     or cut short by a crash): nothing that a repeat does not redo.
//  3. create the link: the link of an unjoined endpoint, which Reconcile
//     deletes.
//  4. store Joined (step 3 is undone if this fails): a joined endpoint whose
//     link is still in the host, which Reconcile keeps and watches, and
//     which Docker's rollback (Leave) or start-up clean-up (DeleteEndpoint)
//     deletes.
//  5. memory, then arm the announcement, made once the link has left the
//     host namespace (Reconcile arms it again).
func (d *Driver) Join(ctx context.Context, req *netapi.JoinRequest) (*api.JoinResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.changes.Lock()
	defer d.changes.Unlock()
	ep, network, err := d.joinTarget(req)
	if err != nil {
		return nil, err
	}
	name := childName(ep.ID)
	if err := d.links.remove(name); err != nil {
		return nil, fmt.Errorf("join endpoint %s: %w", short(ep.ID), err)
	}
	ifindex, err := d.links.createChild(name, network.Parent, network.Config)
	if err != nil {
		return nil, fmt.Errorf("join endpoint %s: %w", short(ep.ID), err)
	}
	failpoint.Hit("NetworkDriver.Join:link-created")
	ep.Joined, ep.Ifindex, ep.Sandbox = true, ifindex, sandboxName(req.SandboxKey)
	if err := d.db.Update(func(tx *store.Tx) error { return tx.Put(bucketEndpoints, ep.ID, ep) }); err != nil {
		d.undo("delete link", d.links.remove(name), logrus.Fields{"endpoint": ep.ID, "link": name})
		return nil, fmt.Errorf("join endpoint %s: %w", short(ep.ID), err)
	}
	d.state.putEndpoint(ep)
	// The IPAM driver may have taken this host's block in the pool since
	// the network was created.
	d.announceNetwork(network)
	d.announceWhenMoved(ep, network)
	d.log.WithFields(logrus.Fields{"network": network.ID, "endpoint": ep.ID, "link": name, "parent": network.Parent}).Info("endpoint joined")
	return joinResponse(ep, network), nil
}

// sandboxName is the last element of Docker's SandboxKey, "" if none came.
func sandboxName(key string) string {
	if key == "" {
		return ""
	}
	return path.Base(key)
}

// joinTarget finds the endpoint and its network, with communities given at
// Join taking over from those given at CreateEndpoint.
func (d *Driver) joinTarget(req *netapi.JoinRequest) (endpointRecord, networkRecord, error) {
	ep, ok := d.state.endpoint(req.EndpointID)
	if !ok {
		return ep, networkRecord{}, fmt.Errorf("ipvlan-bgp: endpoint %s not found", short(req.EndpointID))
	}
	network, ok := d.state.network(ep.NetworkID)
	if !ok {
		return ep, network, fmt.Errorf("ipvlan-bgp: network %s of endpoint %s not found", short(ep.NetworkID), short(ep.ID))
	}
	// Join's options are the sandbox's, full of Docker's own keys: only
	// ours are read.
	joinOpts := map[string]any{}
	for _, key := range []string{optCommunities, optLargeCommunities} {
		if v, ok := req.Options[key]; ok {
			joinOpts[key] = v
		}
	}
	cfg, err := d.endpointOptions(network, joinOpts)
	if err != nil {
		return ep, network, err
	}
	if len(joinOpts) > 0 {
		ep.Config = cfg
	}
	return ep, network, nil
}

// joinResponse tells Docker what to name the interface and how to route in
// the container: in L3 modes (and for a family with no gateway) a connected
// default route, since the parent routes for the container; in L2 mode the
// network's gateway. Docker 28+ takes a default route as a candidate and
// installs the one of the container's networks with the highest
// --gw-priority, so a container on this network and a bridge keeps one
// working default route, the user's choice.
func joinResponse(ep endpointRecord, network networkRecord) *api.JoinResponse {
	resp := &api.JoinResponse{
		InterfaceName: api.InterfaceName{SrcName: childName(ep.ID), DstName: ep.Config.IfName, DstPrefix: containerIfPrefix},
		// Never attach the container to docker_gwbridge: the ipvlan link
		// is its way out, also for an IPv6-only container.
		DisableGatewayService: true,
	}
	for _, a := range ep.Addresses {
		gw := gatewayFor(a.Addr(), network)
		switch {
		case gw.Is4():
			resp.Gateway = gw.String()
		case gw.Is6():
			resp.GatewayIPv6 = gw.String()
		default:
			resp.StaticRoutes = append(resp.StaticRoutes, &netapi.StaticRoute{Destination: defaultRoute(a.Addr()), RouteType: routeConnected})
		}
	}
	return resp
}

// gatewayFor is the L2 gateway of the pool holding addr, or the zero Addr.
func gatewayFor(addr netip.Addr, network networkRecord) netip.Addr {
	if network.Config.Mode != modeL2 {
		return netip.Addr{}
	}
	for _, p := range network.Pools {
		if p.Prefix.Contains(addr) {
			return p.Gateway
		}
	}
	return netip.Addr{}
}

func defaultRoute(addr netip.Addr) string {
	unspecified := netip.IPv6Unspecified()
	if addr.Is4() {
		unspecified = netip.IPv4Unspecified()
	}
	return netip.PrefixFrom(unspecified, 0).String()
}

// hostAdverts is what an announce=host endpoint announces: its addresses as
// host routes, with the network's communities and its own.
func hostAdverts(ep endpointRecord, network networkRecord) []route.Advert {
	if network.Config.Announce != announceHost || ep.Fallback {
		return nil
	}
	communities := union(network.Config.Communities, ep.Config.Communities)
	large := union(network.Config.LargeCommunities, ep.Config.LargeCommunities)
	adverts := make([]route.Advert, 0, len(ep.Addresses))
	for _, a := range ep.Addresses {
		host := netip.PrefixFrom(a.Addr(), a.Addr().BitLen())
		adverts = append(adverts, route.Advert{Prefix: host, Communities: communities, LargeCommunities: large})
	}
	return adverts
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// announceWhenMoved announces a joined endpoint once its link has left the
// host namespace, that is once Docker has put it in the container:
// announcing earlier would draw traffic to an address nothing answers yet.
// The first look is made now (Reconcile counts on that); later ones poll,
// because a *netlink.Handle does not say which namespace it is in, so no
// link event subscription can be opened on it.
func (d *Driver) announceWhenMoved(ep endpointRecord, network networkRecord) {
	adverts := hostAdverts(ep, network)
	if len(adverts) == 0 {
		return
	}
	token := d.announce.arm(ep.ID)
	if d.announceIfMoved(ep.ID, token, adverts) {
		return
	}
	d.watchers.Add(1)
	go func() {
		defer d.watchers.Done()
		d.watchMove(ep.ID, token, adverts)
	}()
}

func (d *Driver) watchMove(endpointID string, token uint64, adverts []route.Advert) {
	tick := time.NewTicker(movePoll)
	defer tick.Stop()
	slow := time.NewTimer(moveWait)
	defer slow.Stop()
	for {
		select {
		case <-d.done:
			return
		case <-slow.C:
			d.log.WithFields(logrus.Fields{"endpoint": endpointID, "link": childName(endpointID), "after": moveWait}).
				Warn("link still in the host namespace: announcing it once Docker moves it into the container")
			tick.Reset(moveSlowPoll)
		case <-tick.C:
			if !d.announce.armedWith(endpointID, token) {
				return
			}
			if d.announceIfMoved(endpointID, token, adverts) {
				return
			}
		}
	}
}

// prefixesOf lists the adverts' prefixes, for logs.
func prefixesOf(adverts []route.Advert) []string {
	out := make([]string, len(adverts))
	for i, a := range adverts {
		out[i] = a.Prefix.String()
	}
	return out
}

// announceIfMoved announces unless the link is still in the host namespace,
// and reports whether the watch is over.
func (d *Driver) announceIfMoved(endpointID string, token uint64, adverts []route.Advert) bool {
	log := d.log.WithFields(logrus.Fields{"endpoint": endpointID, "link": childName(endpointID)})
	inHost, err := d.links.inHost(childName(endpointID))
	if err != nil {
		log.WithError(err).Warn("cannot tell whether Docker moved the link yet")
		return false
	}
	if inHost {
		return false
	}
	if d.announce.setIfArmed(endpointID, token, adverts) {
		log.WithField("prefixes", prefixesOf(adverts)).Info("endpoint announced")
	}
	return true
}

// Leave withdraws the endpoint and deletes its link if Docker left it in
// the host namespace; an unknown endpoint has already left. Step order, and
// what a crash after each step leaves:
//  1. withdraw: a joined record, so Reconcile announces again, while Docker
//     goes on to DeleteEndpoint, which withdraws for good.
//  2. store not Joined: if the link is still in the host, the link of an
//     unjoined endpoint, which Reconcile deletes.
//  3. memory, then delete the link if it is in the host namespace.
func (d *Driver) Leave(ctx context.Context, req *netapi.LeaveRequest) error {
	if err := checkDockerID("endpoint", req.EndpointID); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	d.changes.Lock()
	defer d.changes.Unlock()
	ep, ok := d.state.endpoint(req.EndpointID)
	if !ok {
		return nil
	}
	withdrawn := d.announce.announced(ep.ID)
	d.announce.withdraw(ep.ID)
	failpoint.Hit("NetworkDriver.Leave:withdrawn")
	if ep.Joined {
		ep.Joined = false
		if err := d.db.Update(func(tx *store.Tx) error { return tx.Put(bucketEndpoints, ep.ID, ep) }); err != nil {
			return fmt.Errorf("leave endpoint %s: %w", short(ep.ID), err)
		}
		d.state.putEndpoint(ep)
	}
	if err := d.links.remove(childName(ep.ID)); err != nil {
		return fmt.Errorf("leave endpoint %s: %w", short(ep.ID), err)
	}
	d.log.WithFields(logrus.Fields{"network": ep.NetworkID, "endpoint": ep.ID, "withdrawn": prefixesOf(withdrawn)}).Info("endpoint left")
	return nil
}
