package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
	"github.com/ipvlan-bgp/ipvlan-bgp/fib"
)

// KernelRoutes is what the importer needs of the kernel's route table
// (*fib.Table): replace a batch of routes, a route without next hops
// removing its prefix.
type KernelRoutes interface {
	ReplaceBatch(ctx context.Context, routes []fib.Route) ([]fib.RouteError, error)
}

// importer installs the routes the speaker learns from its peers into the
// kernel: one route per prefix, ECMP over every equal best path.
//
// GoBGP's best-path watch feeds it (bestPaths, peerChanged): with
// use-multiple-paths on, an event carries for each changed prefix the paths
// that joined its set of equal best paths and, withdrawn, those that left
// it. The importer keeps every prefix's set and the kernel follows it.
// Withdrawals and dropped sessions arrive the same way. It never calls
// GoBGP: what it needs of the rest comes in importerDeps.
type importer struct {
	importerDeps

	// batches carries the decoded events to run's goroutine.
	batches chan watchBatch

	// ownedKick wakes run to check the learned routes under the prefixes
	// in ownedPending against owned again; capacity 1, see ownedChanged.
	ownedKick    chan struct{}
	ownedMu      sync.Mutex
	ownedPending []netip.Prefix

	// The fields below belong to run's goroutine.

	// learned holds every prefix's current best paths, so a change of a
	// path or of owned can be applied without GoBGP. A set is never changed
	// in place: prefixes learned alike share one.
	learned map[netip.Prefix][]hop
	// lastHops is the path set last stored in learned: prefixes learned
	// together mostly share it, and storing one slice for all of them
	// spares a copy per prefix.
	lastHops []hop
	// refused holds the prefixes refused and why, so each is logged once
	// (again only after it was accepted or withdrawn in between).
	refused map[netip.Prefix]string
	// peerLinks maps a peer's address to the interface of its session, for
	// link-local next hops; "" caches "not known" until a session changes.
	peerLinks map[netip.Addr]string
}

// importerDeps is what the importer is given at construction.
type importerDeps struct {
	kernel KernelRoutes
	// links lists the sessions' interfaces: peer address (no zone) ->
	// interface, for the unnumbered and link-local ones.
	links func(context.Context) (map[netip.Addr]string, error)
	owned func(netip.Prefix) bool // a prefix this host originates
	// connected holds the host's connected subnets; nil: none known.
	connected Connected
	policy    config.ImportPolicy
	log       *logrus.Entry
}

func newImporter(deps importerDeps) *importer {
	deps.log = deps.log.WithField("part", "import")
	return &importer{
		importerDeps: deps,
		// A few decoded events in hand keep decoding and kernel writes
		// overlapping; more would only hold a full table's worth of decoded
		// paths at once during a burst, while GoBGP's watcher queues its
		// own events behind them anyway.
		batches:   make(chan watchBatch, 4),
		ownedKick: make(chan struct{}, 1),
		learned:   make(map[netip.Prefix][]hop),
		refused:   make(map[netip.Prefix]string),
		peerLinks: make(map[netip.Addr]string),
	}
}

// ownedChanged tells the importer that prefixes became or stopped being
// ours (owned by the driver, or the host's connected subnets): a learned
// route inside one that became ours leaves the kernel, one inside one that
// stopped being ours goes in. It never blocks; changes made while a check
// is pending join that check.
func (im *importer) ownedChanged(prefixes []netip.Prefix) {
	im.ownedMu.Lock()
	im.ownedPending = append(im.ownedPending, prefixes...)
	im.ownedMu.Unlock()
	select {
	case im.ownedKick <- struct{}{}:
	default:
	}
}

// watchBatch is one event from the watch: path changes, or a session
// change.
type watchBatch struct {
	changes     []pathChange
	peerChanged bool
}

// pathChange is one path joining (or, withdrawn, leaving) its prefix's set
// of equal best paths.
type pathChange struct {
	prefix    netip.Prefix
	hop       hop
	withdrawn bool
}

// hop is what the importer keeps of a learned path: the prefix is the key
// it is kept under, and the peer tells one path of a prefix from another.
type hop struct {
	nexthop netip.Addr
	peer    netip.Addr
}

// bestPaths is the watch's best-path callback. It decodes in GoBGP's watch
// goroutine, so decoding the next events overlaps with writing the kernel
// routes of the last ones, and queues the result for run; GoBGP's watcher
// queues behind it without blocking its server loop.
func (im *importer) bestPaths(ctx context.Context, paths []*apiutil.Path) {
	im.queue(ctx, watchBatch{changes: im.decode(paths)})
}

// peerChanged is the watch's peer callback: a session went up or down,
// which may change the interface behind a link-local next hop.
func (im *importer) peerChanged(ctx context.Context) {
	im.queue(ctx, watchBatch{peerChanged: true})
}

func (im *importer) queue(ctx context.Context, b watchBatch) {
	select {
	case im.batches <- b:
	case <-ctx.Done():
	}
}

// A burst of at least releaseBurst changed prefixes (a session's full
// table) leaves the heap grown to the burst's peak, most of it garbage of
// the decoding. Once the watch has been quiet for releaseQuiet, that memory
// goes back to the operating system rather than staying in the plugin's
// resident size until the runtime's scavenger slowly returns it.
const (
	releaseBurst = 10_000
	releaseQuiet = time.Second
)

// run applies the watch's batches and rechecks on owned changes until ctx
// ends, releasing memory after a burst.
func (im *importer) run(ctx context.Context) {
	release := time.NewTimer(releaseQuiet)
	release.Stop()
	defer release.Stop()
	burst := 0
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-im.batches:
			if burst += im.apply(ctx, im.coalesce(b)); burst >= releaseBurst {
				release.Reset(releaseQuiet)
			}
		case <-release.C:
			burst = 0
			debug.FreeOSMemory()
		case <-im.ownedKick:
			im.recheck(ctx)
		}
	}
}

// coalesce joins b and every batch already queued behind it, in order, so
// a burst of churn becomes one kernel batch with one change per prefix.
func (im *importer) coalesce(b watchBatch) []pathChange {
	changes := b.changes // the batch is ours now: appending to it spares a copy
	for {
		if b.peerChanged {
			clear(im.peerLinks)
		}
		select {
		case b = <-im.batches:
			changes = append(changes, b.changes...)
		default:
			return changes
		}
	}
}

// apply learns the changes, in order, and brings the kernel in line with
// every prefix they touched, in one batch. It returns how many prefixes
// that was.
func (im *importer) apply(ctx context.Context, changes []pathChange) int {
	touched := make(map[netip.Prefix]struct{}, len(changes))
	for _, c := range changes {
		im.learn(c)
		touched[c.prefix] = struct{}{}
	}
	routes := make([]fib.Route, 0, len(touched))
	for prefix := range touched {
		routes = append(routes, im.route(ctx, prefix, im.learned[prefix]))
	}
	im.install(ctx, routes)
	return len(touched)
}

// learn applies one change to its prefix's path set: a path replaces the
// one from the same peer, or joins the set; a withdrawn one leaves it.
func (im *importer) learn(c pathChange) {
	old := im.learned[c.prefix]
	i := slices.IndexFunc(old, func(h hop) bool { return h.peer == c.hop.peer })
	var next []hop
	switch {
	case c.withdrawn && i < 0, !c.withdrawn && i >= 0 && old[i] == c.hop:
		return
	case c.withdrawn:
		next = slices.Delete(slices.Clone(old), i, i+1)
	case i >= 0:
		next = slices.Clone(old)
		next[i] = c.hop
	case len(old) == 0 && len(im.lastHops) == 1 && im.lastHops[0] == c.hop:
		next = im.lastHops // the common case of a burst: no set to build
	default:
		next = append(slices.Clip(old), c.hop) // a new array: old may be shared
	}
	if len(next) == 0 {
		delete(im.learned, c.prefix)
		return
	}
	if slices.Equal(next, im.lastHops) {
		next = im.lastHops
	}
	im.learned[c.prefix], im.lastHops = next, next
}

// recheck applies the import policy again to the learned routes inside
// the prefixes whose ownership changed: only their answer can differ.
// Containers come and go far more often than a full table should be
// walked through the policy and fib, so the rest is left alone.
func (im *importer) recheck(ctx context.Context) {
	im.ownedMu.Lock()
	changed := im.ownedPending
	im.ownedPending = nil
	im.ownedMu.Unlock()
	var routes []fib.Route
	for prefix, paths := range im.learned {
		if slices.ContainsFunc(changed, func(c netip.Prefix) bool { return covers(c, prefix) }) {
			routes = append(routes, im.route(ctx, prefix, paths))
		}
	}
	if len(routes) > 0 {
		im.install(ctx, routes)
	}
}

// route is the kernel route for prefix's learned paths: no next hops when
// there are none or the policy refuses it.
func (im *importer) route(ctx context.Context, prefix netip.Prefix, paths []hop) fib.Route {
	reason := ""
	if len(paths) > 0 {
		reason = im.refusal(prefix)
	}
	if reason == "" {
		delete(im.refused, prefix)
		return fib.Route{Prefix: prefix, Nexthops: im.nexthops(ctx, prefix, paths)}
	}
	im.refuse(prefix, paths, reason)
	// No next hops also takes out a route installed before the prefix
	// became ours.
	return fib.Route{Prefix: prefix}
}

func (im *importer) install(ctx context.Context, routes []fib.Route) {
	refused, err := im.kernel.ReplaceBatch(ctx, routes)
	if err != nil {
		return // ctx ended: the importer is stopping
	}
	for _, r := range refused {
		im.log.WithError(r.Err).WithField("prefix", r.Prefix).Warn("install learned route (retried by the periodic sync)")
	}
}

func (im *importer) refuse(prefix netip.Prefix, paths []hop, reason string) {
	if im.refused[prefix] == reason {
		return
	}
	im.refused[prefix] = reason
	im.log.WithFields(logrus.Fields{"prefix": prefix, "peer": paths[0].peer, "reason": reason}).
		Warn("learned route not installed")
}

// refusal says why prefix must not go into the kernel, or "".
func (im *importer) refusal(prefix netip.Prefix) string {
	if prefix.Bits() <= 1 && !im.policy.AllowDefault {
		return fmt.Sprintf("a default route or one of its halves (%s=true lets them in)", config.EnvImportDefault)
	}
	if im.connected != nil && !im.policy.AllowConnected {
		if subnet, ok := im.connected.Covering(prefix); ok {
			return fmt.Sprintf("inside %s, a subnet of the host's own interfaces (%s=true lets it in)", subnet, config.EnvImportConnected)
		}
	}
	if len(im.policy.Allow) > 0 && !slices.ContainsFunc(im.policy.Allow, func(allow netip.Prefix) bool {
		return covers(allow, prefix)
	}) {
		return "outside the import allow list"
	}
	if owner, ok := im.ownedCover(prefix); ok {
		return fmt.Sprintf("inside %s, which this host owns", owner)
	}
	return ""
}

// ownedCover finds an owned prefix equal to or covering prefix: a route to
// a part of our own network would steal traffic meant for our containers.
func (im *importer) ownedCover(prefix netip.Prefix) (netip.Prefix, bool) {
	for bits := prefix.Bits(); bits >= 0; bits-- {
		cover, _ := prefix.Addr().Prefix(bits)
		if im.owned(cover) {
			return cover, true
		}
	}
	return netip.Prefix{}, false
}

func covers(outer, inner netip.Prefix) bool {
	return outer.Addr().BitLen() == inner.Addr().BitLen() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// nexthops turns the paths into kernel next hops; a link-local next hop
// takes the interface of the session it came from.
func (im *importer) nexthops(ctx context.Context, prefix netip.Prefix, paths []hop) []fib.Nexthop {
	nexthops := make([]fib.Nexthop, 0, len(paths))
	for _, p := range paths {
		nh := fib.Nexthop{Addr: p.nexthop}
		if p.nexthop.IsLinkLocalUnicast() {
			if nh.Link = im.peerLink(ctx, p.peer); nh.Link == "" {
				im.log.WithFields(logrus.Fields{"prefix": prefix, "peer": p.peer, "nexthop": p.nexthop}).
					Warn("link-local next hop from a peer whose interface is unknown; path skipped")
				continue
			}
		}
		nexthops = append(nexthops, nh)
	}
	return nexthops
}

// peerLink finds the interface of the session with peer, asking links once
// per session change.
func (im *importer) peerLink(ctx context.Context, peer netip.Addr) string {
	if link, ok := im.peerLinks[peer]; ok {
		return link
	}
	im.peerLinks[peer] = ""
	links, err := im.links(ctx)
	if err != nil {
		im.log.WithError(err).Warn("list the sessions' interfaces")
	}
	for addr, link := range links {
		im.peerLinks[addr] = link
	}
	return im.peerLinks[peer]
}

// decode turns one event's paths into changes; paths not for the kernel
// (other families, our own) are left out, and a path that cannot be read is
// logged and left out.
func (im *importer) decode(paths []*apiutil.Path) []pathChange {
	changes := make([]pathChange, 0, len(paths))
	for _, p := range paths {
		c, ok, err := decodePath(p)
		if err != nil {
			im.log.WithError(err).WithField("peer", p.PeerAddress).Warn("ignore a path GoBGP delivered")
			continue
		}
		if ok {
			changes = append(changes, c)
		}
	}
	return changes
}

// decodePath reads a path from GoBGP's watch. ok is false for a path the
// kernel is not for: not unicast IPv4 or IPv6, or originated by this
// speaker (it has no peer). Its content comes from a peer, so every field
// is checked.
func decodePath(p *apiutil.Path) (c pathChange, ok bool, err error) {
	if (p.Family != bgp.RF_IPv4_UC && p.Family != bgp.RF_IPv6_UC) || !p.PeerAddress.IsValid() {
		return c, false, nil
	}
	nlri, isPrefix := p.Nlri.(*bgp.IPAddrPrefix)
	if !isPrefix {
		return c, false, fmt.Errorf("NLRI %T in family %s", p.Nlri, p.Family)
	}
	if !nlri.Prefix.IsValid() || nlri.Prefix.Addr().Is4() != (p.Family == bgp.RF_IPv4_UC) {
		return c, false, fmt.Errorf("NLRI %s: not a prefix of family %s", nlri.Prefix, p.Family)
	}
	c = pathChange{prefix: nlri.Prefix.Masked(), hop: hop{peer: p.PeerAddress.WithZone("").Unmap()}, withdrawn: p.Withdrawal}
	if c.withdrawn {
		return c, true, nil
	}
	if c.hop.nexthop = pathNexthop(p.Attrs); !c.hop.nexthop.IsValid() {
		// BIRD on a link-local session sends "::" plus its link-local
		// address, and GoBGP keeps only the "::": the next hop is then the
		// peer that sent the route.
		c.hop.nexthop = c.hop.peer
	}
	return c, true, nil
}

// pathNexthop finds the next hop: NEXT_HOP for IPv4, MP_REACH_NLRI for IPv6
// and for IPv4 over IPv6 (RFC 8950). Of a global and a link-local address
// the global one is used, as it needs no interface. The zero Addr means the
// path names none (or only "::").
func pathNexthop(attrs []bgp.PathAttributeInterface) netip.Addr {
	for _, a := range attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			return usable(a.Value)
		case *bgp.PathAttributeMpReachNLRI:
			global, linkLocal := usable(a.Nexthop), usable(a.LinkLocalNexthop)
			if global.IsValid() && !global.IsLinkLocalUnicast() || !linkLocal.IsValid() {
				return global
			}
			return linkLocal
		}
	}
	return netip.Addr{}
}

// usable is a next hop the kernel can take, or the zero Addr.
func usable(a netip.Addr) netip.Addr {
	if !a.IsValid() || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a.Unmap()
}
