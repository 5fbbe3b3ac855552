package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
)

// pathAttrs is what one announced prefix carries: the union of the
// communities of every owner announcing it, sorted so equal sets compare
// equal.
type pathAttrs struct {
	communities      []string
	largeCommunities []string
}

func (a pathAttrs) equal(b pathAttrs) bool {
	return slices.Equal(a.communities, b.communities) && slices.Equal(a.largeCommunities, b.largeCommunities)
}

// exportAllowed applies the export rules: the operator's allow list, or
// the minimum prefix lengths. GoBGP's export policy applies the same rules
// (start.go), also to paths added through its API.
func (s *Speaker) exportAllowed(p netip.Prefix) bool {
	return slices.ContainsFunc(s.exportRules, func(r config.PrefixRule) bool { return r.Contains(p) })
}

// CheckExport says why p would never be announced whatever else changes: a
// prefix shorter than the family's minimum length that the export allow
// list does not name. The network driver refuses such a network up front.
// A prefix merely outside the allow list is not an error: the allow list
// narrows what this host announces, and it may change.
func (s *Speaker) CheckExport(p netip.Prefix) error {
	if s.exportAllowed(p) || p.Bits() >= s.cfg.ExportMinLen.Of(p) {
		return nil
	}
	setting := config.EnvExportMinV4Len
	if p.Addr().Is6() {
		setting = config.EnvExportMinV6Len
	}
	return fmt.Errorf("%s is shorter than /%d, the shortest prefix this host announces: name it in %s, or lower %s",
		p, s.cfg.ExportMinLen.Of(p), config.EnvExportAllow, setting)
}

// acceptable drops, with a log line, the adverts GoBGP could not carry
// (malformed communities), so one bad advert never stalls the others, and
// warns about those the export allow list stops (kept: Owns still counts
// them as ours).
func (s *Speaker) acceptable(owner string, adverts []route.Advert) []route.Advert {
	var out []route.Advert
	for _, a := range adverts {
		log := s.log.WithFields(logrus.Fields{"owner": owner, "prefix": a.Prefix})
		if err := checkAdvert(a); err != nil {
			log.WithError(err).Error("not announcing a malformed advert")
			continue
		}
		if err := s.CheckExport(a.Prefix); err != nil {
			log.WithError(err).Warn("not announcing prefix")
		} else if !s.exportAllowed(a.Prefix) {
			log.WithField("setting", config.EnvExportAllow).Warn("not announcing prefix: outside the export allow list")
		}
		out = append(out, a)
	}
	return out
}

func checkAdvert(a route.Advert) error {
	if !a.Prefix.IsValid() || a.Prefix != a.Prefix.Masked() {
		return fmt.Errorf("prefix %s is not a network prefix", a.Prefix)
	}
	if _, err := communityValues(a.Communities); err != nil {
		return err
	}
	if _, err := largeCommunityValues(a.LargeCommunities); err != nil {
		return err
	}
	return route.CheckCommunitySize(a.Communities, a.LargeCommunities)
}

func sortedUnion(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// reconcile applies the changes since the last run to GoBGP's locally
// originated paths: adds or replaces what differs, withdraws what is gone,
// in batches. Failed prefixes stay marked for the retry.
func (s *Speaker) reconcile(ctx context.Context) error {
	s.reconcileMu.Lock()
	defer s.reconcileMu.Unlock()
	s.mu.Lock()
	changes := s.wanted.takeChanges(s.exportAllowed)
	s.mu.Unlock()
	adds, dels, failed, errs := s.plan(changes)
	f, e := s.applyPaths(ctx, adds, s.addPaths, func(op pathOp) { s.announced[op.prefix] = op.attrs })
	failed, errs = append(failed, f...), append(errs, e...)
	f, e = s.applyPaths(ctx, dels, s.deletePaths, func(op pathOp) { delete(s.announced, op.prefix) })
	failed, errs = append(failed, f...), append(errs, e...)
	s.announcedCount.Store(int64(len(s.announced)))
	if len(adds)+len(dels) > 0 && s.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		s.log.WithFields(logrus.Fields{"announced": len(adds), "withdrawn": len(dels), "failed": len(failed)}).Debug("announcements applied")
	}
	if len(failed) == 0 {
		return nil
	}
	s.mu.Lock()
	s.wanted.markDirty(failed)
	s.mu.Unlock()
	return fmt.Errorf("%d of %d changes failed, first: %w", len(failed), len(changes), errs[0])
}

// pathOp is one prefix's path to add to (or delete from) GoBGP.
type pathOp struct {
	prefix netip.Prefix
	attrs  pathAttrs
	path   *apiutil.Path
}

// plan sorts the changes into paths to add or replace and paths to
// withdraw, against what GoBGP holds (announced).
func (s *Speaker) plan(changes map[netip.Prefix]*pathAttrs) (adds, dels []pathOp, failed []netip.Prefix, errs []error) {
	for p, want := range changes {
		cur, announced := s.announced[p]
		op := pathOp{prefix: p}
		switch {
		case want == nil && announced:
			op.attrs = cur
		case want != nil && (!announced || !cur.equal(*want)):
			op.attrs = *want
		default:
			continue
		}
		path, err := buildPath(p, op.attrs)
		if err != nil {
			failed, errs = append(failed, p), append(errs, fmt.Errorf("build path for %s: %w", p, err))
			continue
		}
		op.path = path
		if want == nil {
			dels = append(dels, op)
		} else {
			adds = append(adds, op)
		}
	}
	return adds, dels, failed, errs
}

// maxPathBatch bounds the paths of one GoBGP call: each call holds GoBGP's
// server loop, which the sessions need too.
const maxPathBatch = 1000

// applyPaths hands ops to GoBGP (call) in batches; done records each that
// went in. When GoBGP refuses a batch, its paths are tried one by one, so a
// bad path fails alone.
func (s *Speaker) applyPaths(ctx context.Context, ops []pathOp, call func([]*apiutil.Path) error, done func(pathOp)) (failed []netip.Prefix, errs []error) {
	for batch := range slices.Chunk(ops, maxPathBatch) {
		if ctx.Err() != nil {
			return append(failed, prefixesOf(batch)...), append(errs, ctx.Err())
		}
		paths := make([]*apiutil.Path, len(batch))
		for i, op := range batch {
			paths[i] = op.path
		}
		if call(paths) == nil {
			for _, op := range batch {
				done(op)
			}
			continue
		}
		for _, op := range batch {
			if err := call([]*apiutil.Path{op.path}); err != nil {
				failed, errs = append(failed, op.prefix), append(errs, fmt.Errorf("%s: %w", op.prefix, err))
				continue
			}
			done(op)
		}
	}
	return failed, errs
}

func prefixesOf(ops []pathOp) []netip.Prefix {
	out := make([]netip.Prefix, len(ops))
	for i, op := range ops {
		out[i] = op.prefix
	}
	return out
}

// addPaths adds (or, for a prefix already there, replaces) paths.
func (s *Speaker) addPaths(paths []*apiutil.Path) error {
	if _, err := s.server.AddPath(apiutil.AddPathRequest{Paths: paths}); err != nil {
		return fmt.Errorf("announce: %w", err)
	}
	return nil
}

// deletePaths withdraws our paths, naming each: a DeletePath naming no path
// (nor UUID) deletes every local path, and one naming UUIDs scans the whole
// RIB per UUID, while a named path is found by its key.
func (s *Speaker) deletePaths(paths []*apiutil.Path) error {
	if err := s.server.DeletePath(apiutil.DeletePathRequest{Paths: paths}); err != nil {
		return fmt.Errorf("withdraw: %w", err)
	}
	return nil
}

// buildPath makes a locally originated path with an unspecified next hop:
// GoBGP then sends each peer the local address of that session (next-hop
// self), the host's own address on the link.
func buildPath(p netip.Prefix, attrs pathAttrs) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, err
	}
	family := bgp.RF_IPv4_UC
	var nexthop bgp.PathAttributeInterface
	if p.Addr().Is4() {
		nexthop, err = bgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
	} else {
		family = bgp.RF_IPv6_UC
		nexthop, err = bgp.NewPathAttributeMpReachNLRI(family, []bgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
	}
	if err != nil {
		return nil, fmt.Errorf("next hop: %w", err)
	}
	pattrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP), nexthop}
	if len(attrs.communities) > 0 {
		values, err := communityValues(attrs.communities)
		if err != nil {
			return nil, err
		}
		pattrs = append(pattrs, bgp.NewPathAttributeCommunities(values))
	}
	if len(attrs.largeCommunities) > 0 {
		values, err := largeCommunityValues(attrs.largeCommunities)
		if err != nil {
			return nil, err
		}
		pattrs = append(pattrs, bgp.NewPathAttributeLargeCommunities(values))
	}
	return &apiutil.Path{Family: family, Nlri: nlri, Attrs: pattrs, Age: time.Now().Unix()}, nil
}

// communityValues packs "ASN:VALUE" communities into their 32-bit form.
func communityValues(list []string) ([]uint32, error) {
	var out []uint32
	for _, c := range list {
		high, low, ok := strings.Cut(c, ":")
		h, herr := strconv.ParseUint(high, 10, 16)
		l, lerr := strconv.ParseUint(low, 10, 16)
		if !ok || herr != nil || lerr != nil {
			return nil, fmt.Errorf("community %q: want ASN:VALUE, each 0..65535", c)
		}
		out = append(out, uint32(h)<<16|uint32(l))
	}
	return out, nil
}

func largeCommunityValues(list []string) ([]*bgp.LargeCommunity, error) {
	var out []*bgp.LargeCommunity
	for _, c := range list {
		lc, err := bgp.ParseLargeCommunity(c)
		if err != nil {
			return nil, fmt.Errorf("large community %q: %w", c, err)
		}
		out = append(out, lc)
	}
	return out, nil
}
