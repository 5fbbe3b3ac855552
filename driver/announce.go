package driver

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
)

// What the host announces for its containers is decided in this one file.
//
// Who calls it, and when:
//   - CreateNetwork calls checkExport before anything is made, and
//     announceNetwork once the network is recorded; DeleteNetwork
//     withdraws the network and its endpoints.
//   - CreateEndpoint calls announceNetwork when the endpoint falls back to
//     the subnet past the route budget (budget.go), and DeleteEndpoint when
//     such an endpoint goes; DeleteEndpoint withdraws the endpoint first.
//   - Join calls announceNetwork (the IPAM driver may have taken this
//     host's block since), then announceWhenMoved: the host routes go out
//     once Docker has moved the link into the container. Leave withdraws.
//   - Reconcile calls reannounce at start-up: every network, and every
//     joined endpoint whose link is still somewhere.
//   - Networks and Endpoints (observe.go) read what is announced now, for
//     the status view and the metrics (announced, carrierOf).

const (
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

// announcements sits between the driver and the BGP speaker. It remembers
// what each owner (endpoint or network ID) has announced, for EndpointInfo,
// and it arms an endpoint's announcement at Join so that a watcher that sees
// the link move only announces if no Leave came in between.
type announcements struct {
	mu        sync.Mutex
	announcer route.Announcer
	current   map[string][]route.Advert
	armed     map[string]uint64
	nextToken uint64
}

func newAnnouncements(a route.Announcer) *announcements {
	return &announcements{announcer: a, current: map[string][]route.Advert{}, armed: map[string]uint64{}}
}

// arm starts a new announcement window for owner and returns its token.
func (a *announcements) arm(owner string) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nextToken++
	a.armed[owner] = a.nextToken
	return a.nextToken
}

// setIfArmed announces adverts unless owner was withdrawn or re-armed since
// token was issued. Set is called under the lock so that it is ordered with
// a concurrent withdraw.
func (a *announcements) setIfArmed(owner string, token uint64, adverts []route.Advert) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.armed[owner] != token {
		return false
	}
	a.setLocked(owner, adverts)
	return true
}

// armedWith reports whether owner's announcement window is still the one
// token opened: no withdraw or new arm since.
func (a *announcements) armedWith(owner string, token uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.armed[owner] == token
}

// set announces adverts for owner unconditionally (networks' subnets).
func (a *announcements) set(owner string, adverts []route.Advert) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.setLocked(owner, adverts)
}

// withdraw disarms owner and withdraws whatever it announced.
func (a *announcements) withdraw(owner string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.armed, owner)
	a.setLocked(owner, nil)
}

func (a *announcements) setLocked(owner string, adverts []route.Advert) {
	if len(adverts) == 0 {
		delete(a.current, owner)
	} else {
		a.current[owner] = adverts
	}
	a.announcer.Set(owner, adverts)
}

// announced is what owner has announced now.
func (a *announcements) announced(owner string) []route.Advert {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.current[owner])
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
		log.WithField("prefixes", route.Prefixes(adverts)).Info("endpoint announced")
	}
	return true
}

// announceNetwork announces the pools of a network that announces its
// subnet (announce=subnet, or an endpoint past the route budget), and
// withdraws them once it no longer does: on a host whose IPAM driver hands
// out a block inside a pool, only that block, so that hosts sharing a
// network do not all claim the whole subnet.
func (d *Driver) announceNetwork(rec networkRecord) {
	if !d.announcesSubnet(rec) {
		if len(d.announce.announced(rec.ID)) > 0 {
			d.announce.set(rec.ID, nil)
			d.log.WithField("network", rec.ID).Info("network subnet withdrawn: no endpoint falls back to it")
		}
		return
	}
	d.announce.set(rec.ID, d.subnetAdverts(rec))
}

// subnetAdverts is what a network announces when it announces its subnet.
func (d *Driver) subnetAdverts(rec networkRecord) []route.Advert {
	adverts := make([]route.Advert, 0, len(rec.Pools))
	for _, p := range rec.Pools {
		prefix := p.Prefix
		if d.ranges != nil {
			if local, ok := d.ranges.LocalRange(p.Prefix); ok {
				prefix = local
			}
		}
		adverts = append(adverts, route.Advert{Prefix: prefix, Communities: rec.Config.Communities, LargeCommunities: rec.Config.LargeCommunities})
	}
	return adverts
}

// checkExport refuses an announce=subnet network whose subnet the speaker
// would never announce (a default route, or broader than it allows), so
// the user hears it from docker network create, not from the log.
func (d *Driver) checkExport(rec networkRecord) error {
	if rec.Config.Announce != announceSubnet {
		return nil
	}
	for _, a := range d.subnetAdverts(rec) {
		if err := d.announce.announcer.CheckExport(a.Prefix); err != nil {
			return optionErr(optAnnounce, string(announceSubnet), "%s", err)
		}
	}
	return nil
}

// announcesSubnet tells whether a network announces its subnet: by choice
// (announce=subnet) or because an endpoint fell back to it.
func (d *Driver) announcesSubnet(n networkRecord) bool {
	if n.Config.Announce == announceSubnet {
		return true
	}
	for _, ep := range d.state.endpointsOf(n.ID) {
		if ep.Fallback {
			return true
		}
	}
	return false
}

func (d *Driver) reannounce() {
	for _, rec := range d.state.allNetworks() {
		d.announceNetwork(rec)
	}
	var joined []endpointRecord
	for _, ep := range d.state.allEndpoints() {
		if ep.Joined {
			joined = append(joined, ep)
		}
	}
	inContainer, err := d.inContainers(joined)
	if err != nil {
		d.log.WithError(err).Warn("cannot tell which endpoints' links are in a container; announcing every joined endpoint")
	}
	for _, ep := range joined {
		log := d.log.WithFields(logrus.Fields{"endpoint": ep.ID, "network": ep.NetworkID, "link": childName(ep.ID)})
		network, ok := d.state.network(ep.NetworkID)
		if !ok {
			log.Warn("endpoint of an unknown network: not announcing it")
			continue
		}
		if err == nil && !inContainer[ep.ID] && !d.inHost(ep, log) {
			log.Warn("endpoint's link is in no container (a reboot, or its container died while the plugin was down): not announcing it until Docker joins it again")
			continue
		}
		d.announceWhenMoved(ep, network)
	}
}

// inHost reports whether a joined endpoint's link is still in the host
// (Docker is about to move it). When that cannot be told, it counts as
// there: announcing is what a restart did before.
func (d *Driver) inHost(ep endpointRecord, log *logrus.Entry) bool {
	inHost, err := d.links.inHost(childName(ep.ID))
	if err != nil {
		log.WithError(err).Warn("cannot tell whether the endpoint's link is in the host; announcing it")
		return true
	}
	return inHost
}

// carrierOf is the owner whose announcement carries traffic to ep: the
// endpoint itself, or its network when the network announces its subnet
// for it.
func carrierOf(ep endpointRecord, network networkRecord) string {
	if network.Config.Announce == announceSubnet || ep.Fallback {
		return network.ID
	}
	return ep.ID
}
