package bgp

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/config/oc"
	"github.com/sirupsen/logrus"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
)

// raInterval is how often Router Advertisements go out on unnumbered links:
// FRR starts an interface session only after it has heard one.
const raInterval = 3 * time.Second

// runUnnumbered peers over an interface's IPv6 link-local address (RFC 8950
// next hops, like FRR's `neighbor eth0 interface`). It keeps advertising
// itself, and adds the neighbour as soon as the link shows exactly one
// link-local neighbour, re-adding it if that neighbour changes: GoBGP
// resolves the peer's address only once, when the neighbour is added.
func (s *Speaker) runUnnumbered(ctx context.Context, n config.Neighbor, restarting bool) {
	defer s.wg.Done()
	log := s.log.WithField("peer", n.Interface)
	sender, err := newICMPSender()
	if err != nil {
		s.recordErr(err, "open ICMPv6 socket for unnumbered peering", logrus.Fields{"peer": n.Interface})
		return
	}
	defer sender.close()
	tick := time.NewTicker(raInterval)
	defer tick.Stop()
	current := ""
	for {
		if err := sender.advertise(n.Interface); err != nil {
			log.WithError(err).Debug("send router advertisement")
		}
		if peer := s.syncUnnumbered(ctx, n, current, restarting, sender); peer != current {
			current, restarting = peer, false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// syncUnnumbered returns the link-local peer now configured in GoBGP for
// n ("" if none), adding or replacing it as the neighbour table says.
func (s *Speaker) syncUnnumbered(ctx context.Context, n config.Neighbor, current string, restarting bool, sender *icmpSender) string {
	log := s.log.WithField("peer", n.Interface)
	peer, err := oc.GetIPv6LinkLocalNeighborAddress(n.Interface)
	if err != nil {
		// An echo to all nodes makes the peer answer, which fills the
		// neighbour table for the next try.
		if perr := sender.ping(n.Interface); perr != nil {
			log.WithError(perr).Debug("ping all nodes")
		}
		log.WithError(err).Debug("waiting for the link-local neighbour")
		return current
	}
	if peer == current {
		return current
	}
	if current != "" {
		if err := s.server.DeletePeer(ctx, &api.DeletePeerRequest{Address: current}); err != nil {
			log.WithError(err).Warn("remove the previous link-local neighbour")
		}
	}
	if err := s.server.AddPeer(ctx, &api.AddPeerRequest{Peer: s.peerConfig(n, peer, restarting)}); err != nil {
		s.recordErr(err, "add unnumbered neighbour", logrus.Fields{"peer": n.String(), "address": peer})
		return ""
	}
	log.WithField("address", peer).Info("unnumbered neighbour added")
	return peer
}

// icmpSender sends Router Advertisements and echo requests to all nodes on
// a link. It never reads: the kernel handles the answers.
type icmpSender struct {
	conn *icmp.PacketConn
	seq  int
}

func newICMPSender() (*icmpSender, error) {
	conn, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, fmt.Errorf("listen ICMPv6: %w", err)
	}
	var filter ipv6.ICMPFilter
	filter.SetAll(true) // receive nothing: this socket only sends
	if err := conn.IPv6PacketConn().SetICMPFilter(&filter); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("filter ICMPv6: %w", err)
	}
	return &icmpSender{conn: conn}, nil
}

func (c *icmpSender) close() { _ = c.conn.Close() }

// advertise sends a Router Advertisement with router lifetime 0: it
// announces us on the link without offering to be a default router.
func (c *icmpSender) advertise(ifname string) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	// Cur hop limit 64, no flags, router lifetime 0, reachable time and
	// retransmit timer unspecified (RFC 4861 4.2).
	body := []byte{64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if len(ifi.HardwareAddr) == 6 {
		body = append(append(body, 1, 1), ifi.HardwareAddr...) // source link-layer address option
	}
	return c.send(ifi, ipv6.ICMPTypeRouterAdvertisement, &icmp.RawBody{Data: body})
}

func (c *icmpSender) ping(ifname string) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	c.seq++
	echo := &icmp.Echo{ID: os.Getpid() & 0xffff, Seq: c.seq, Data: []byte("ipvlan-bgp")}
	return c.send(ifi, ipv6.ICMPTypeEchoRequest, echo)
}

// send writes to ff02::1 on ifi with hop limit 255, which receivers of
// neighbour discovery messages require (RFC 4861 6.1.2).
func (c *icmpSender) send(ifi *net.Interface, typ ipv6.ICMPType, body icmp.MessageBody) error {
	msg, err := (&icmp.Message{Type: typ, Body: body}).Marshal(nil)
	if err != nil {
		return err
	}
	cm := &ipv6.ControlMessage{HopLimit: 255, IfIndex: ifi.Index}
	dst := &net.IPAddr{IP: net.IPv6linklocalallnodes, Zone: ifi.Name}
	if _, err := c.conn.IPv6PacketConn().WriteTo(msg, cm, dst); err != nil {
		return fmt.Errorf("send %v on %s: %w", typ, ifi.Name, err)
	}
	return nil
}
