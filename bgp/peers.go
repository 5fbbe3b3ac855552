package bgp

import (
	"context"
	"slices"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
)

// connectRetry is how often GoBGP retries an outgoing connection; its 120 s
// default leaves a host without routes for two minutes when it boots before
// its leaf. It is also how long a session stays idle after GoBGP reset it
// (BFD down, `gobgp neighbor X reset`) instead of GoBGP's 30 s, so a
// session whose uplink healed is back as soon as a failed connect would be.
const connectRetry = 5

// restartDeferral bounds how long a restarting GoBGP holds back its
// updates waiting for End-of-RIB from EVERY neighbour (one leaf that is down
// would hold them for the whole deferral). Our routes are all in the RIB
// before any session starts, so waiting longer gains nothing.
const restartDeferral = 5

// addPeers configures peer groups, dynamic neighbours and neighbours. A
// neighbour that fails is logged and kept in Status; the others still come
// up. Unnumbered neighbours are added in the background once their link
// shows a peer.
func (s *Speaker) addPeers(ctx, bg context.Context, restarting bool) {
	for _, g := range s.cfg.PeerGroups {
		pg := &api.PeerGroup{Conf: &api.PeerGroupConf{PeerGroupName: g.Name, PeerAsn: g.RemoteAS, AuthPassword: string(g.Password)}}
		common := s.peerCommon(g.PeerSettings, s.groupFamilies(g), restarting)
		pg.Timers, pg.EbgpMultihop, pg.GracefulRestart, pg.AfiSafis, pg.Bfd = common.Timers, common.EbgpMultihop, common.GracefulRestart, common.AfiSafis, common.Bfd
		if err := s.server.AddPeerGroup(ctx, &api.AddPeerGroupRequest{PeerGroup: pg}); err != nil {
			s.recordErr(err, "add peer group", logrus.Fields{"peer_group": g.Name})
		}
	}
	for _, d := range s.cfg.DynamicNeighbors {
		req := &api.AddDynamicNeighborRequest{DynamicNeighbor: &api.DynamicNeighbor{Prefix: d.Prefix.String(), PeerGroup: d.PeerGroup}}
		if err := s.server.AddDynamicNeighbor(ctx, req); err != nil {
			s.recordErr(err, "add dynamic neighbour range", logrus.Fields{"prefix": d.Prefix, "peer_group": d.PeerGroup})
		}
	}
	for _, n := range s.cfg.Neighbors {
		if n.Interface != "" {
			s.wg.Add(1)
			go s.runUnnumbered(bg, n, restarting)
			continue
		}
		if err := s.server.AddPeer(ctx, &api.AddPeerRequest{Peer: s.peerConfig(n, n.Address.String(), restarting)}); err != nil {
			s.recordErr(err, "add neighbour", logrus.Fields{"peer": n.String()})
		}
	}
}

// peerConfig turns a validated neighbour, at address, into GoBGP's form.
// Its peer group's settings are already folded in, and the group is not
// named: GoBGP would let the group's values override the neighbour's own.
// An unnumbered neighbour's address is the link-local one found on its
// interface (runUnnumbered follows it; GoBGP resolves it only once).
func (s *Speaker) peerConfig(n config.Neighbor, address string, restarting bool) *api.Peer {
	p := s.peerCommon(n.PeerSettings, neighborFamilies(n), restarting)
	p.Conf = &api.PeerConf{
		NeighborAddress:   address,
		NeighborInterface: n.Interface,
		PeerAsn:           n.RemoteAS,
		AuthPassword:      string(n.Password),
		Description:       n.PeerGroup,
	}
	if n.Interface != "" {
		// With GoBGP's default local address every route on an unnumbered
		// session carries next hop ::, which FRR rejects as martian; "::"
		// makes it take the address from the socket (interop.md).
		p.Transport = &api.Transport{LocalAddress: "::"}
	}
	return p
}

// peerCommon holds what neighbours and peer groups share.
func (s *Speaker) peerCommon(ps config.PeerSettings, families []config.Family, restarting bool) *api.Peer {
	p := &api.Peer{
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:               uint64(ps.HoldTime.Seconds()),
			KeepaliveInterval:      uint64(ps.Keepalive.Seconds()),
			ConnectRetry:           connectRetry,
			IdleHoldTimeAfterReset: connectRetry,
		}},
	}
	if ps.MultihopTTL > 0 {
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(ps.MultihopTTL)}
	}
	if ps.BFD.Enabled {
		// GoBGP takes BFD intervals in microseconds.
		p.Bfd = &api.BfdPeerConfig{
			Enabled:                  true,
			RequiredMinimumReceive:   uint32(ps.BFD.MinRx.Microseconds()),
			DesiredMinimumTxInterval: uint32(ps.BFD.MinTx.Microseconds()),
			DetectionMultiplier:      uint32(ps.BFD.Multiplier),
		}
	}
	gr := s.cfg.GracefulRestart
	if gr.Enabled {
		p.GracefulRestart = &api.GracefulRestart{
			Enabled:     true,
			RestartTime: uint32(gr.RestartTime.Seconds()),
			// Set the Restart State bit when we come back with routes to
			// re-announce, so peers keep them until our End-of-RIB.
			LocalRestarting: restarting,
			DeferralTime:    restartDeferral,
		}
	}
	for _, f := range families {
		p.AfiSafis = append(p.AfiSafis, &api.AfiSafi{
			Config:            &api.AfiSafiConfig{Family: apiFamily(f), Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: gr.Enabled}},
			PrefixLimits:      &api.PrefixLimit{Family: apiFamily(f), MaxPrefixes: ps.MaxPrefixes},
		})
	}
	return p
}

func apiFamily(f config.Family) *api.Family {
	if f == config.IPv6Unicast {
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
}

// neighborFamilies resolves a neighbour's families (PeerSettings.Families).
func neighborFamilies(n config.Neighbor) []config.Family {
	switch {
	case n.Families != nil:
		return n.Families
	case n.Interface != "":
		return []config.Family{config.IPv4Unicast, config.IPv6Unicast}
	case n.Address.Is4():
		return []config.Family{config.IPv4Unicast}
	}
	return []config.Family{config.IPv6Unicast}
}

// groupFamilies resolves a peer group's families from the dynamic
// neighbour ranges that use it, as neighborFamilies does from an address.
func (s *Speaker) groupFamilies(g config.PeerGroup) []config.Family {
	if g.Families != nil {
		return g.Families
	}
	var out []config.Family
	for _, d := range s.cfg.DynamicNeighbors {
		f := config.IPv6Unicast
		if d.Prefix.Addr().Is4() {
			f = config.IPv4Unicast
		}
		if d.PeerGroup == g.Name && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return []config.Family{config.IPv4Unicast, config.IPv6Unicast}
	}
	return out
}
