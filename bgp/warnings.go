package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
)

// warnings are conditions that do not stop the speaker but break the
// fabric quietly, each with what to set: Status shows them until they
// clear. The zero value is ready.
type warnings struct {
	mu    sync.Mutex
	byKey map[string]string
}

// set records (or replaces) the warning under key; it reports whether the
// text is new, so that the caller logs a condition once, not at each look.
func (w *warnings) set(key, text string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byKey == nil {
		w.byKey = map[string]string{}
	}
	if w.byKey[key] == text {
		return false
	}
	w.byKey[key] = text
	return true
}

// clear drops the warning under key; it reports whether there was one.
func (w *warnings) clear(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.byKey[key]
	delete(w.byKey, key)
	return ok
}

// list returns the warnings sorted by key.
func (w *warnings) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	keys := make([]string, 0, len(w.byKey))
	for k := range w.byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = w.byKey[k]
	}
	return out
}

// asLoopEvery is how often the speaker looks for another host in its AS.
var asLoopEvery = 30 * time.Second

// watchASLoops warns while a peer sends routes that carry this host's own
// AS in their AS path and are not this host's own prefixes: another host
// announced them with the same BGP_ASN, and GoBGP drops them as AS-path
// loops (RFC 4271 9.1.2), so this host cannot reach that host's
// containers. GoBGP keeps such a route in the peer's Adj-RIB-In, counted
// as received but not accepted; the speaker lists a peer's Adj-RIB-In only
// when those two counts differ and changed since its last look, so a full
// table costs nothing while it stands still. Our own prefixes coming back
// (a dual-homed host hears them from the other leaf) are no warning.
func (s *Speaker) watchASLoops(ctx context.Context) {
	defer s.wg.Done()
	looked := map[string][2]uint64{} // peer -> received, accepted when last listed
	everyUntil(ctx, asLoopEvery, func() bool {
		s.checkASLoops(ctx, looked)
		return false
	})
}

// everyUntil calls fn every interval until fn returns true (then it returns
// true) or ctx ends (false).
func everyUntil(ctx context.Context, every time.Duration, fn func() bool) bool {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
		if fn() {
			return true
		}
	}
}

// asLoopKey is the warnings key of the AS-loop warning about one peer.
func asLoopKey(peer string) string { return "as-loop " + peer }

func (s *Speaker) checkASLoops(ctx context.Context, looked map[string][2]uint64) {
	type peerCounts struct {
		address  string
		families []bgp.Family
		counts   [2]uint64
	}
	var peers []peerCounts
	err := s.server.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		pc := peerCounts{address: p.GetState().GetNeighborAddress()}
		if pc.address == "" {
			pc.address = p.GetConf().GetNeighborAddress()
		}
		for _, af := range p.GetAfiSafis() {
			st := af.GetState()
			pc.counts[0] += st.GetReceived()
			pc.counts[1] += st.GetAccepted()
			if f := st.GetFamily(); f != nil {
				pc.families = append(pc.families, bgp.NewFamily(uint16(f.Afi), uint8(f.Safi)))
			}
		}
		peers = append(peers, pc)
	})
	if err != nil {
		s.log.WithError(err).Debug("list peers for the AS-loop check")
		return
	}
	present := map[string]bool{}
	for _, p := range peers {
		present[p.address] = true
		if p.counts == looked[p.address] {
			continue
		}
		looked[p.address] = p.counts
		found := ""
		if p.counts[0] > p.counts[1] {
			found = s.foreignLoop(p.address, p.families)
		}
		s.setASLoop(p.address, found)
	}
	for addr := range looked {
		if !present[addr] {
			delete(looked, addr)
			s.setASLoop(addr, "")
		}
	}
}

// setASLoop records what foreignLoop found for peer ("" is nothing), and
// logs a change.
func (s *Speaker) setASLoop(peer, found string) {
	key := asLoopKey(peer)
	if found == "" {
		if s.warnings.clear(key) {
			s.log.WithField("peer", peer).Info("no more routes with this host's AS in their AS path")
		}
		return
	}
	text := fmt.Sprintf("peer %s sends routes with this host's AS %d in their AS path (%s), dropped as AS-path loops: another host uses BGP_ASN=%d; give every host its own %s",
		peer, s.cfg.ASN, found, s.cfg.ASN, config.EnvASN)
	if s.warnings.set(key, text) {
		s.log.WithFields(logrus.Fields{"peer": peer, "asn": s.cfg.ASN}).Warn(text)
	}
}

// foreignLoop returns the first route in peer's Adj-RIB-In whose AS path
// holds our AS and whose prefix we do not announce ("prefix, AS path
// ..."), or "".
func (s *Speaker) foreignLoop(peer string, families []bgp.Family) string {
	found := ""
	for _, family := range families {
		err := s.server.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: peer, Family: family},
			func(nlri bgp.NLRI, paths []*apiutil.Path) {
				if found != "" {
					return
				}
				prefix, err := netip.ParsePrefix(nlri.String())
				if err == nil && s.Owns(prefix) {
					return
				}
				for _, p := range paths {
					if path := asPath(p.Attrs); slices.Contains(path, s.cfg.ASN) {
						found = fmt.Sprintf("%s, AS path %s", nlri, formatASPath(path))
						return
					}
				}
			})
		if err != nil {
			s.log.WithError(err).WithField("peer", peer).Debug("list received routes for the AS-loop check")
		}
		if found != "" {
			return found
		}
	}
	return ""
}

// asPath flattens a path's AS_PATH attribute.
func asPath(attrs []bgp.PathAttributeInterface) []uint32 {
	var out []uint32
	for _, a := range attrs {
		if ap, ok := a.(*bgp.PathAttributeAsPath); ok {
			for _, seg := range ap.Value {
				out = append(out, seg.GetAS()...)
			}
		}
	}
	return out
}

func formatASPath(path []uint32) string {
	s := ""
	for i, as := range path {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprint(as)
	}
	return s
}
