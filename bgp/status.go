package bgp

import (
	"context"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// Status is the speaker's state for the status subcommand and metrics.
type Status struct {
	Running   bool
	ASN       uint32
	RouterID  string
	Peers     []PeerStatus
	Announced int      // prefixes in GoBGP's RIB
	LastError string   // last config or BGP error, "" if none
	Warnings  []string // what may break the fabric, and what to set (warnings.go)
}

// PeerStatus is one BGP session.
type PeerStatus struct {
	Address    string // the peer's address (link-local%iface when unnumbered)
	Interface  string // set for unnumbered neighbours
	RemoteAS   uint32
	State      string // one of SessionStates, or "unknown"
	Uptime     time.Duration
	Received   uint64 // prefixes received, all families
	Accepted   uint64
	Advertised uint64
	// BFD is the state of the session's BFD (one of BFDStates), "" when
	// BFD is off for it.
	BFD string
}

// The states of a BGP session (RFC 4271 8.2.2), as Status names them.
const (
	SessionIdle        = "idle"
	SessionConnect     = "connect"
	SessionActive      = "active"
	SessionOpenSent    = "opensent"
	SessionOpenConfirm = "openconfirm"
	SessionEstablished = "established"
)

// SessionStates are every state PeerStatus.State takes, in the order a
// session goes through them.
var SessionStates = []string{SessionIdle, SessionConnect, SessionActive, SessionOpenSent, SessionOpenConfirm, SessionEstablished}

// The states of a session's BFD (RFC 5880 6.2), as Status names them.
const (
	BFDAdminDown = "admin_down"
	BFDDown      = "down"
	BFDInit      = "init"
	BFDUp        = "up"
)

// BFDStates are every state PeerStatus.BFD takes when BFD is on.
var BFDStates = []string{BFDAdminDown, BFDDown, BFDInit, BFDUp}

// Status reports sessions, the prefixes announced and the last error. It works before
// Start too (no peers then).
func (s *Speaker) Status(ctx context.Context) (Status, error) {
	s.mu.Lock()
	st := Status{Running: s.running, ASN: s.cfg.ASN}
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	s.mu.Unlock()
	st.Warnings = s.warnings.list()
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
	if up := p.GetTimers().GetState().GetUptime(); up != nil && ps.State == SessionEstablished {
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
	api.PeerState_SESSION_STATE_IDLE:        SessionIdle,
	api.PeerState_SESSION_STATE_CONNECT:     SessionConnect,
	api.PeerState_SESSION_STATE_ACTIVE:      SessionActive,
	api.PeerState_SESSION_STATE_OPENSENT:    SessionOpenSent,
	api.PeerState_SESSION_STATE_OPENCONFIRM: SessionOpenConfirm,
	api.PeerState_SESSION_STATE_ESTABLISHED: SessionEstablished,
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
