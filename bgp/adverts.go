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

// exportAllowed applies the operator's export allow list.
func (s *Speaker) exportAllowed(p netip.Prefix) bool {
	if len(s.cfg.ExportAllow) == 0 {
		return true
	}
	for _, r := range s.cfg.ExportAllow {
		if r.Contains(p) {
			return true
		}
	}
	return false
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
		if !s.exportAllowed(a.Prefix) {
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
	_, err := buildPath(a.Prefix, pathAttrs{a.Communities, a.LargeCommunities})
	return err
}

// wantedPaths merges every owner's adverts into one path per prefix, so two
// owners announcing the same prefix share it until the last one withdraws.
func (s *Speaker) wantedPaths() map[netip.Prefix]pathAttrs {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[netip.Prefix]pathAttrs)
	for _, adverts := range s.owners {
		for _, a := range adverts {
			if !s.exportAllowed(a.Prefix) {
				continue
			}
			cur := out[a.Prefix]
			cur.communities = sortedUnion(cur.communities, a.Communities)
			cur.largeCommunities = sortedUnion(cur.largeCommunities, a.LargeCommunities)
			out[a.Prefix] = cur
		}
	}
	return out
}

func sortedUnion(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// reconcile makes GoBGP's locally originated paths match the wanted set,
// adding or replacing what differs and withdrawing what is gone.
func (s *Speaker) reconcile(ctx context.Context) error {
	s.reconcileMu.Lock()
	defer s.reconcileMu.Unlock()
	want := s.wantedPaths()
	for p, attrs := range s.announced {
		if _, ok := want[p]; !ok {
			if err := s.withdraw(ctx, p, attrs); err != nil {
				return err
			}
		}
	}
	for p, attrs := range want {
		if cur, ok := s.announced[p]; ok && cur.equal(attrs) {
			continue
		}
		if err := s.announce(ctx, p, attrs); err != nil {
			return err
		}
	}
	s.announcedCount.Store(int64(len(s.announced)))
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
	s.log.WithFields(logrus.Fields{"prefix": p, "communities": attrs.communities,
		"large_communities": attrs.largeCommunities}).Debug("announced")
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
	s.log.WithField("prefix", p).Debug("withdrawn")
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
		var values []*bgp.LargeCommunity
		for _, c := range attrs.largeCommunities {
			lc, err := bgp.ParseLargeCommunity(c)
			if err != nil {
				return nil, fmt.Errorf("large community %q: %w", c, err)
			}
			values = append(values, lc)
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
