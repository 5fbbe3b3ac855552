package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/sirupsen/logrus"

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
	return slices.ContainsFunc(s.exportRules, func(r PrefixRule) bool { return r.Contains(p) })
}

// CheckExport says why p would never be announced whatever else changes: a
// prefix shorter than the family's minimum length that the export allow
// list does not name. The network driver refuses such a network up front.
// A prefix merely outside the allow list is not an error: the allow list
// narrows what this host announces, and it may change.
func (s *Speaker) CheckExport(p netip.Prefix) error {
	if s.exportAllowed(p) || p.Bits() >= s.cfg.ExportMinLen.of(p) {
		return nil
	}
	setting := EnvExportMinV4Len
	if p.Addr().Is6() {
		setting = EnvExportMinV6Len
	}
	return fmt.Errorf("%s is shorter than /%d, the shortest prefix this host announces: name it in %s, or lower %s",
		p, s.cfg.ExportMinLen.of(p), EnvExportAllow, setting)
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
			log.WithField("setting", EnvExportAllow).Warn("not announcing prefix: outside the export allow list")
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
// originated paths: adds or replaces what differs, withdraws what is gone.
// Failed prefixes stay marked for the retry.
func (s *Speaker) reconcile(ctx context.Context) error {
	s.reconcileMu.Lock()
	defer s.reconcileMu.Unlock()
	s.mu.Lock()
	changes := s.wanted.takeChanges(s.exportAllowed)
	s.mu.Unlock()
	var failed []netip.Prefix
	var errs []error
	for p, want := range changes {
		if err := s.apply(ctx, p, want); err != nil {
			failed = append(failed, p)
			errs = append(errs, err)
		}
	}
	s.announcedCount.Store(int64(len(s.announced)))
	if len(failed) == 0 {
		return nil
	}
	s.mu.Lock()
	s.wanted.markDirty(failed)
	s.mu.Unlock()
	return fmt.Errorf("%d of %d changes failed, first: %w", len(failed), len(changes), errs[0])
}

// apply brings one prefix to want (nil: withdrawn).
func (s *Speaker) apply(ctx context.Context, p netip.Prefix, want *pathAttrs) error {
	cur, announced := s.announced[p]
	switch {
	case want == nil && announced:
		return s.withdraw(ctx, p, cur)
	case want != nil && (!announced || !cur.equal(*want)):
		return s.announce(ctx, p, *want)
	}
	return nil
}

// announce adds (or, for a prefix already there, replaces) one path.
func (s *Speaker) announce(ctx context.Context, p netip.Prefix, attrs pathAttrs) error {
	path, err := buildPath(p, attrs)
	if err != nil {
		return fmt.Errorf("build path for %s: %w", p, err)
	}
	if _, err := s.server.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path}); err != nil {
		return fmt.Errorf("announce %s: %w", p, err)
	}
	s.announced[p] = attrs
	if s.log.Logger.IsLevelEnabled(logrus.DebugLevel) { // spare 10k field maps per bulk Set
		s.log.WithFields(logrus.Fields{"prefix": p, "communities": attrs.communities,
			"large_communities": attrs.largeCommunities}).Debug("announced")
	}
	return nil
}

// withdraw deletes our path for p, naming the path: a DeletePath naming
// neither a path nor a UUID deletes every local path, and one naming a UUID
// costs a scan of the whole RIB per call in GoBGP v3.37.0 (minutes for 10k
// withdrawals), while a named path is found by its key.
func (s *Speaker) withdraw(ctx context.Context, p netip.Prefix, attrs pathAttrs) error {
	path, err := buildPath(p, attrs)
	if err != nil {
		return fmt.Errorf("build path for %s: %w", p, err)
	}
	if err := s.server.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Path: path}); err != nil {
		return fmt.Errorf("withdraw %s: %w", p, err)
	}
	delete(s.announced, p)
	if s.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		s.log.WithField("prefix", p).Debug("withdrawn")
	}
	return nil
}

// buildPath makes a locally originated path with an unspecified next hop:
// GoBGP then sends each peer the local address of that session (next-hop
// self), the host's own address on the link.
func buildPath(p netip.Prefix, attrs pathAttrs) (*api.Path, error) {
	origin := bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)
	var nlri bgp.AddrPrefixInterface
	var nexthop bgp.PathAttributeInterface
	if p.Addr().Is4() {
		nlri = bgp.NewIPAddrPrefix(uint8(p.Bits()), p.Addr().String())
		nexthop = bgp.NewPathAttributeNextHop("0.0.0.0")
	} else {
		nlri = bgp.NewIPv6AddrPrefix(uint8(p.Bits()), p.Addr().String())
		nexthop = bgp.NewPathAttributeMpReachNLRI("::", []bgp.AddrPrefixInterface{nlri})
	}
	pattrs := []bgp.PathAttributeInterface{origin, nexthop}
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
	return apiutil.NewPath(nlri, false, pattrs, time.Now())
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
