package bgp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// bgpPort is the port peers listen on (RFC 4271).
const bgpPort = 179

// dropSessions resets the TCP connection of every established session
// (SOCK_DESTROY sends the peer a RST), as if this process had died: no BGP
// Cease reaches the peer, so a graceful-restart helper keeps our routes.
// It is what lets a speaker restart gracefully inside one process.
func (s *Speaker) dropSessions(ctx context.Context) error {
	peers := map[netip.Addr]bool{}
	err := s.server.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.State == nil || p.State.SessionState != api.PeerState_ESTABLISHED {
			return
		}
		if a, err := netip.ParseAddr(p.State.NeighborAddress); err == nil {
			peers[a.WithZone("")] = true
		}
	})
	if err != nil || len(peers) == 0 {
		return err
	}
	var errs []error
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		socks, err := netlink.SocketDiagTCP(family)
		if err != nil {
			errs = append(errs, fmt.Errorf("list TCP sockets: %w", err))
			continue
		}
		for _, sock := range socks {
			if !s.isSessionSocket(sock, peers) {
				continue
			}
			if err := destroySocket(family, sock); err != nil {
				errs = append(errs, fmt.Errorf("reset session with %s: %w", sock.ID.Destination, err))
				continue
			}
			s.log.WithFields(logrus.Fields{"peer": sock.ID.Destination}).Info("dropped BGP session without Cease")
		}
	}
	return errors.Join(errs...)
}

// isSessionSocket tells one of our BGP connections: to a peer we have a
// session with, on the BGP port at either end.
func (s *Speaker) isSessionSocket(sock *netlink.Socket, peers map[netip.Addr]bool) bool {
	remote, ok := netip.AddrFromSlice(sock.ID.Destination)
	if !ok || !peers[remote.Unmap()] {
		return false
	}
	return sock.ID.DestinationPort == bgpPort ||
		(s.cfg.ListenPort != 0 && sock.ID.SourcePort == s.cfg.ListenPort)
}

// destroyRequest is struct inet_diag_req_v2 naming one socket exactly (its
// cookie included) for SOCK_DESTROY; vishvananda/netlink's own
// SocketDestroy handles IPv4 only.
type destroyRequest struct {
	family uint8
	id     netlink.SocketID
}

const sizeofDestroyRequest = 56

func (r *destroyRequest) Len() int { return sizeofDestroyRequest }

func (r *destroyRequest) Serialize() []byte {
	b := make([]byte, sizeofDestroyRequest)
	b[0], b[1] = r.family, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(b[4:], ^uint32(0)) // any state
	binary.BigEndian.PutUint16(b[8:], r.id.SourcePort)
	binary.BigEndian.PutUint16(b[10:], r.id.DestinationPort)
	copy(b[12:28], addrBytes(r.family, r.id.Source))
	copy(b[28:44], addrBytes(r.family, r.id.Destination))
	binary.NativeEndian.PutUint32(b[44:], r.id.Interface)
	binary.NativeEndian.PutUint32(b[48:], r.id.Cookie[0])
	binary.NativeEndian.PutUint32(b[52:], r.id.Cookie[1])
	return b
}

func addrBytes(family uint8, ip net.IP) []byte {
	if v4 := ip.To4(); family == unix.AF_INET && v4 != nil {
		return v4
	}
	return ip.To16()
}

func destroySocket(family uint8, sock *netlink.Socket) error {
	req := nl.NewNetlinkRequest(nl.SOCK_DESTROY, unix.NLM_F_ACK)
	req.AddData(&destroyRequest{family: family, id: sock.ID})
	_, err := req.Execute(unix.NETLINK_INET_DIAG, 0)
	return err
}
