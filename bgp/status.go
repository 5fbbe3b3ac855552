package bgp

import (
	"context"
	"maps"
	"time"

	api "github.com/osrg/gobgp/v4/api"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
)

// Status is the speaker's state for the status subcommand and metrics.
type Status struct {
	Running   bool
	ASN       uint32
	RouterID  string
	Peers     []PeerStatus
	Adverts   map[string][]route.Advert // per owner, as Set gave them
	Announced int                       // prefixes in GoBGP's RIB
	LastError string                    // last config or BGP error, "" if none
}

// PeerStatus is one BGP session.
type PeerStatus struct {
	Address    string // the peer's address (link-local%iface when unnumbered)
	Interface  string // set for unnumbered neighbours
	RemoteAS   uint32
	State      string // idle, connect, active, opensent, openconfirm, established
	Uptime     time.Duration
	Received   uint64 // prefixes received, all families
	Accepted   uint64
	Advertised uint64
	// BFD is the state of the session's BFD (one of BFDStates), "" when
	// BFD is off for it.
	BFD string
}

// The states of a session's BFD (RFC 5880 6.2), as Status names them.
const (
	BFDAdminDown = "admin_down"
	BFDDown      = "down"
	BFDInit      = "init"
	BFDUp        = "up"
)

// BFDStates are every state PeerStatus.BFD takes when BFD is on.
var BFDStates = []string{BFDAdminDown, BFDDown, BFDInit, BFDUp}

// Status reports sessions, adverts and the last error. It works before
// Start too (no peers then).
func (s *Speaker) Status(ctx context.Context) (Status, error) {
	s.mu.Lock()
	st := Status{Running: s.running, ASN: s.cfg.ASN, Adverts: maps.Clone(s.wanted.owners)}
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	s.mu.Unlock()
	st.Announced = int(s.announcedCount.Load())
	if !st.Running {
		return st, nil
	}
	bgp, err := s.server.GetBgp(ctx, &api.GetBgpRequest{})
	if err != nil {
		return st, err
	}
	st.RouterID = bgp.Global.RouterId
	err = s.server.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		st.Peers = append(st.Peers, peerStatus(p))
	})
	return st, err
}

func peerStatus(p *api.Peer) PeerStatus {
	ps := PeerStatus{
		Address:   p.GetState().GetNeighborAddress(),
		Interface: p.GetConf().GetNeighborInterface(),
		RemoteAS:  p.GetState().GetPeerAsn(),
		State:     sessionStateName(p.GetState().GetSessionState()),
	}
	if up := p.GetTimers().GetState().GetUptime(); up != nil && ps.State == "established" {
		ps.Uptime = time.Since(up.AsTime()).Truncate(time.Second)
	}
	for _, af := range p.GetAfiSafis() {
		ps.Received += af.GetState().GetReceived()
		ps.Accepted += af.GetState().GetAccepted()
		ps.Advertised += af.GetState().GetAdvertised()
	}
	if p.GetBfd().GetEnabled() {
		ps.BFD = bfdStateName(p.GetState().GetBfdState().GetSessionState())
	}
	return ps
}

var sessionStates = map[api.PeerState_SessionState]string{
	api.PeerState_SESSION_STATE_IDLE:        "idle",
	api.PeerState_SESSION_STATE_CONNECT:     "connect",
	api.PeerState_SESSION_STATE_ACTIVE:      "active",
	api.PeerState_SESSION_STATE_OPENSENT:    "opensent",
	api.PeerState_SESSION_STATE_OPENCONFIRM: "openconfirm",
	api.PeerState_SESSION_STATE_ESTABLISHED: "established",
}

func sessionStateName(st api.PeerState_SessionState) string {
	if name, ok := sessionStates[st]; ok {
		return name
	}
	return "unknown"
}

var bfdStates = map[api.BfdSessionState]string{
	api.BfdSessionState_BFD_SESSION_STATE_ADMIN_DOWN: BFDAdminDown,
	api.BfdSessionState_BFD_SESSION_STATE_DOWN:       BFDDown,
	api.BfdSessionState_BFD_SESSION_STATE_INIT:       BFDInit,
	api.BfdSessionState_BFD_SESSION_STATE_UP:         BFDUp,
}

// bfdStateName names a BFD state. GoBGP reports a session it has not
// started yet (no BFD peer for the neighbour) as unspecified: down, as far
// as forwarding goes.
func bfdStateName(st api.BfdSessionState) string {
	if name, ok := bfdStates[st]; ok {
		return name
	}
	return BFDDown
}
