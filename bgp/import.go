package bgp

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/ipvlan-bgp/ipvlan-bgp/fib"
)

// importer installs the routes the speaker learns from its peers into the
// kernel: one route per prefix, ECMP over every equal best path.
//
// It relies on GoBGP's best-path watch with use-multiple-paths on: for each
// prefix that changed, an event carries the prefix's whole set of equal best
// paths (or one withdrawn path when none is left), so a prefix's paths in an
// event replace what was known before. Withdrawals and dropped sessions
// arrive the same way.
type importer struct {
	table     *fib.Table
	policy    ImportPolicy
	owned     func(netip.Prefix) bool
	connected Connected // nil: none known
	log       *logrus.Entry

	// ownedKick wakes run to check the learned routes under the prefixes
	// in ownedPending against owned again; capacity 1, see ownedChanged.
	ownedKick    chan struct{}
	ownedMu      sync.Mutex
	ownedPending []netip.Prefix

	// The fields below belong to run's goroutine.

	// learned holds every prefix's current best paths (withdrawn ones
	// removed), so a change of owned can be applied without GoBGP.
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

func newImporter(table *fib.Table, policy ImportPolicy, owned func(netip.Prefix) bool, connected Connected, log *logrus.Entry) *importer {
	return &importer{
		table:     table,
		policy:    policy,
		owned:     owned,
		connected: connected,
		log:       log.WithField("component", "import"),
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

// watchBatch is one event from the watch: paths grouped by prefix, or a
// session change.
type watchBatch struct {
	paths       map[netip.Prefix][]hop
	peerChanged bool
}

// run watches s's best paths (existing ones first) and keeps the kernel in
// step until ctx ends. It fails only if the watch cannot be registered.
func (im *importer) run(ctx context.Context, s *server.BgpServer) error {
	// A few decoded events in hand keep decoding and kernel writes
	// overlapping; more would only hold a full table's worth of decoded
	// paths at once during a burst, while GoBGP's watcher queues its own
	// (cheaper) events behind them anyway.
	batches := make(chan watchBatch, 4)
	req := &api.WatchEventRequest{
		Peer: &api.WatchEventRequest_Peer{},
		Table: &api.WatchEventRequest_Table{Filters: []*api.WatchEventRequest_Table_Filter{
			{Type: api.WatchEventRequest_Table_Filter_BEST, Init: true},
		}},
	}
	// BatchSize stays 0: a batch limit would split a prefix's path set
	// across events, and each event's set must be whole.
	// Paths are decoded here, in GoBGP's watch goroutine, so decoding the
	// next events overlaps with writing the kernel routes of the last ones.
	err := s.WatchEvent(ctx, req, func(r *api.WatchEventResponse) {
		b := watchBatch{paths: im.groupByPrefix(r.GetTable().GetPaths()), peerChanged: r.GetPeer() != nil}
		select {
		case batches <- b: // GoBGP's watcher queues behind this without blocking its server loop
		case <-ctx.Done():
		}
	})
	if err != nil {
		return fmt.Errorf("watch GoBGP best paths: %w", err)
	}
	im.loop(ctx, s, batches)
	return nil
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

// loop applies the watch's batches and rechecks on owned changes until ctx
// ends, releasing memory after a burst.
func (im *importer) loop(ctx context.Context, s *server.BgpServer, batches <-chan watchBatch) {
	release := time.NewTimer(releaseQuiet)
	release.Stop()
	defer release.Stop()
	burst := 0
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-batches:
			pending := im.coalesce(b, batches)
			im.apply(ctx, s, pending)
			if burst += len(pending); burst >= releaseBurst {
				release.Reset(releaseQuiet)
			}
		case <-release.C:
			burst = 0
			debug.FreeOSMemory()
		case <-im.ownedKick:
			im.recheck(ctx, s)
		}
	}
}

// coalesce merges b and every batch already queued behind it; a later
// event's set for a prefix replaces an earlier one, so a burst of churn
// becomes one kernel change per prefix.
func (im *importer) coalesce(b watchBatch, queued <-chan watchBatch) map[netip.Prefix][]hop {
	pending := b.paths // the batch is ours now: merging into it spares a copy
	for {
		if b.peerChanged {
			clear(im.peerLinks)
		}
		select {
		case b = <-queued:
			maps.Copy(pending, b.paths)
		default:
			return pending
		}
	}
}

// groupByPrefix decodes one event's flat path list. A prefix whose paths
// are all withdrawn or locally originated maps to an empty list: nothing of
// it is to be in the kernel. It only reads im (it runs in the watch's
// goroutine).
func (im *importer) groupByPrefix(paths []*api.Path) map[netip.Prefix][]hop {
	groups := make(map[netip.Prefix][]hop, len(paths))
	for _, p := range paths {
		lp, err := decodePath(p)
		if err != nil {
			im.log.WithError(err).WithField("peer", p.GetNeighborIp()).Warn("ignore a path GoBGP delivered")
			continue
		}
		if lp.family == familyOther {
			continue
		}
		if lp.withdrawn || lp.local() {
			if _, seen := groups[lp.prefix]; !seen {
				groups[lp.prefix] = nil
			}
			continue
		}
		groups[lp.prefix] = append(groups[lp.prefix], hop{nexthop: lp.nexthop, peer: lp.peer})
	}
	return groups
}

// apply brings the kernel in line with the pending prefixes, in one batch.
func (im *importer) apply(ctx context.Context, s *server.BgpServer, pending map[netip.Prefix][]hop) {
	routes := make([]fib.Route, 0, len(pending))
	for prefix, paths := range pending {
		if len(paths) == 0 {
			delete(im.learned, prefix)
		} else {
			if slices.Equal(im.lastHops, paths) {
				paths = im.lastHops
			}
			im.learned[prefix], im.lastHops = paths, paths
		}
		routes = append(routes, im.route(ctx, s, prefix, paths))
	}
	im.install(ctx, routes)
}

// recheck applies the import policy again to the learned routes inside
// the prefixes whose ownership changed: only their answer can differ.
// Containers come and go far more often than a full table should be
// walked through the policy and fib, so the rest is left alone.
func (im *importer) recheck(ctx context.Context, s *server.BgpServer) {
	im.ownedMu.Lock()
	changed := im.ownedPending
	im.ownedPending = nil
	im.ownedMu.Unlock()
	var routes []fib.Route
	for prefix, paths := range im.learned {
		if slices.ContainsFunc(changed, func(c netip.Prefix) bool { return covers(c, prefix) }) {
			routes = append(routes, im.route(ctx, s, prefix, paths))
		}
	}
	if len(routes) > 0 {
		im.install(ctx, routes)
	}
}

// route is the kernel route for prefix's learned paths: no next hops when
// there are none or the policy refuses it.
func (im *importer) route(ctx context.Context, s *server.BgpServer, prefix netip.Prefix, paths []hop) fib.Route {
	reason := ""
	if len(paths) > 0 {
		reason = im.refusal(prefix)
	}
	if reason == "" {
		delete(im.refused, prefix)
		return fib.Route{Prefix: prefix, Nexthops: im.nexthops(ctx, s, prefix, paths)}
	}
	im.refuse(prefix, paths, reason)
	// No next hops also takes out a route installed before the prefix
	// became ours.
	return fib.Route{Prefix: prefix}
}

func (im *importer) install(ctx context.Context, routes []fib.Route) {
	refused, err := im.table.ReplaceBatch(ctx, routes)
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
		return fmt.Sprintf("a default route or one of its halves (%s=true lets them in)", EnvImportDefault)
	}
	if im.connected != nil && !im.policy.AllowConnected {
		if subnet, ok := im.connected.Covering(prefix); ok {
			return fmt.Sprintf("inside %s, a subnet of the host's own interfaces (%s=true lets it in)", subnet, EnvImportConnected)
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
func (im *importer) nexthops(ctx context.Context, s *server.BgpServer, prefix netip.Prefix, paths []hop) []fib.Nexthop {
	nexthops := make([]fib.Nexthop, 0, len(paths))
	for _, p := range paths {
		nh := fib.Nexthop{Addr: p.nexthop}
		if p.nexthop.IsLinkLocalUnicast() {
			if nh.Link = im.peerLink(ctx, s, p.peer); nh.Link == "" {
				im.log.WithFields(logrus.Fields{"prefix": prefix, "peer": p.peer, "nexthop": p.nexthop}).
					Warn("link-local next hop from a peer whose interface is unknown; path skipped")
				continue
			}
		}
		nexthops = append(nexthops, nh)
	}
	return nexthops
}

// peerLink finds the interface of the session with peer: the configured
// neighbor-interface of an unnumbered session, or the zone of a link-local
// neighbor address.
func (im *importer) peerLink(ctx context.Context, s *server.BgpServer, peer netip.Addr) string {
	if link, ok := im.peerLinks[peer]; ok {
		return link
	}
	im.peerLinks[peer] = ""
	err := s.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		for _, addr := range []string{p.GetState().GetNeighborAddress(), p.GetConf().GetNeighborAddress()} {
			a, err := netip.ParseAddr(addr)
			if err != nil {
				continue
			}
			link := p.GetConf().GetNeighborInterface()
			if link == "" {
				link = a.Zone()
			}
			if link != "" {
				im.peerLinks[a.WithZone("")] = link
			}
		}
	})
	if err != nil {
		im.log.WithError(err).Warn("list GoBGP peers")
	}
	return im.peerLinks[peer]
}

// hop is what the importer keeps of a learned path: the prefix is the
// key it is kept under.
type hop struct {
	nexthop netip.Addr
	peer    netip.Addr
}

// learnedPath is what the importer needs of a GoBGP path.
type learnedPath struct {
	prefix    netip.Prefix
	nexthop   netip.Addr
	peer      netip.Addr // invalid for a locally originated path
	withdrawn bool
	family    pathFamily
}

type pathFamily int

const (
	familyOther pathFamily = iota // not unicast IPv4/IPv6: not for the kernel
	familyUnicast
)

// local reports a path this speaker originated (GoBGP gives it no peer).
func (p learnedPath) local() bool { return !p.peer.IsValid() }

// decodePath reads a path from GoBGP's watch. Its content comes from a
// peer, so every field is checked.
func decodePath(p *api.Path) (learnedPath, error) {
	f := p.GetFamily()
	if f.GetSafi() != api.Family_SAFI_UNICAST || (f.GetAfi() != api.Family_AFI_IP && f.GetAfi() != api.Family_AFI_IP6) {
		return learnedPath{}, nil
	}
	lp := learnedPath{withdrawn: p.GetIsWithdraw(), family: familyUnicast}
	lp.peer, _ = netip.ParseAddr(p.GetNeighborIp()) // "<nil>" for our own paths
	var nlri api.IPAddressPrefix
	if err := p.GetNlri().UnmarshalTo(&nlri); err != nil {
		return lp, fmt.Errorf("decode NLRI: %w", err)
	}
	addr, err := netip.ParseAddr(nlri.Prefix)
	if err != nil || nlri.PrefixLen > uint32(addr.BitLen()) || addr.Is4() != (f.GetAfi() == api.Family_AFI_IP) {
		return lp, fmt.Errorf("NLRI %s/%d: not a prefix of family %s", nlri.Prefix, nlri.PrefixLen, f.GetAfi())
	}
	lp.prefix = netip.PrefixFrom(addr, int(nlri.PrefixLen)).Masked()
	if lp.withdrawn || lp.local() {
		return lp, nil
	}
	if lp.nexthop, err = pathNexthop(p.GetPattrs()); err != nil {
		return lp, fmt.Errorf("route %s: %w", lp.prefix, err)
	}
	if !lp.nexthop.IsValid() {
		// BIRD on a link-local session sends "::" plus its link-local
		// address, and GoBGP keeps only the "::": the next hop is then the
		// peer that sent the route.
		lp.nexthop = lp.peer.WithZone("")
	}
	return lp, nil
}

// The type URLs of the attributes holding next hops, computed once:
// anypb's MessageIs would allocate a new message per attribute checked.
var (
	nextHopType = typeURL(&api.NextHopAttribute{})
	mpReachType = typeURL(&api.MpReachNLRIAttribute{})
)

func typeURL(m proto.Message) string {
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}

// pathNexthop finds the next hop: NEXT_HOP for IPv4, MP_REACH_NLRI for IPv6
// and for IPv4 over IPv6 (RFC 8950). Of a global and a link-local address
// the global one is used, as it needs no interface. The zero Addr means the
// path names none (or only "::").
func pathNexthop(attrs []*anypb.Any) (netip.Addr, error) {
	for _, a := range attrs {
		var candidates []string
		switch a.GetTypeUrl() {
		case nextHopType:
			var nh api.NextHopAttribute
			if err := a.UnmarshalTo(&nh); err != nil {
				return netip.Addr{}, fmt.Errorf("decode NEXT_HOP: %w", err)
			}
			candidates = []string{nh.NextHop}
		case mpReachType:
			var mp api.MpReachNLRIAttribute
			if err := a.UnmarshalTo(&mp); err != nil {
				return netip.Addr{}, fmt.Errorf("decode MP_REACH_NLRI: %w", err)
			}
			candidates = mp.NextHops
		default:
			continue
		}
		var found netip.Addr
		for _, c := range candidates {
			addr, err := netip.ParseAddr(c)
			if err != nil || addr.IsUnspecified() {
				continue
			}
			if !found.IsValid() || (found.IsLinkLocalUnicast() && !addr.IsLinkLocalUnicast()) {
				found = addr.Unmap()
			}
		}
		return found, nil
	}
	return netip.Addr{}, nil
}
