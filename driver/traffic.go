package driver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/dockerid"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Per-container traffic counters.
//
// Docker moves an endpoint's link into the container's namespace, where the
// host's LinkList no longer sees it, and the plugin cannot count on opening
// that namespace: SandboxKey names a file under /var/run/docker/netns on the
// host, outside a managed plugin's rootfs, and the plugin runs in its own
// PID namespace. But when a link changes namespace the kernel gives the
// target namespace an ID in the namespace the link left (a netnsid, what
// `ip netns list-id` shows), and rtnetlink answers RTM_GETLINK for a link
// in any namespace with an ID (IFLA_TARGET_NETNSID, Linux 4.20), given
// CAP_NET_ADMIN there. The link keeps its index across the move unless the
// container already has one like it, and it still names its parent by the
// parent's index in the host. So the plugin records the index at Join and,
// at read time, asks each netnsid for that index and takes the link whose
// parent is the network's parent.

// EndpointTraffic is the counters of one endpoint's link, from the
// container's side: received is traffic into the container.
type EndpointTraffic struct {
	Network, Endpoint, Sandbox string
	RxBytes, RxPackets         uint64
	TxBytes, TxPackets         uint64
}

// traffic remembers in which namespace each endpoint's link was found, so
// a read asks one namespace per endpoint once it has been found.
type traffic struct {
	ns    netns.NsHandle
	mu    sync.Mutex
	where map[string]int32 // netnsid by endpoint ID
}

func newTraffic(ns netns.NsHandle) *traffic {
	if ns == 0 {
		ns = netns.None()
	}
	return &traffic{ns: ns, where: map[string]int32{}}
}

func (t *traffic) forget(endpointID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.where, endpointID)
}

// Traffic reads the counters of every joined endpoint whose link is in a
// container. An endpoint whose link cannot be found is left out.
func (d *Driver) Traffic(ctx context.Context) ([]EndpointTraffic, error) {
	sock, ids, err := d.traffic.open()
	if err != nil {
		return nil, err
	}
	defer sock.Close()
	parents := map[string]int{}
	var out []EndpointTraffic
	for _, ep := range d.state.allEndpoints() {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if !ep.Joined || ep.Ifindex == 0 {
			continue
		}
		network, ok := d.state.network(ep.NetworkID)
		if !ok {
			continue
		}
		if _, seen := parents[network.Parent]; !seen {
			parent, err := d.links.lookup(network.Parent)
			if err != nil || parent == nil {
				parents[network.Parent] = 0
				continue
			}
			parents[network.Parent] = parent.Attrs().Index
		}
		link, err := d.traffic.find(sock, ids, ep, parents[network.Parent])
		if err != nil {
			return out, fmt.Errorf("read counters of endpoint %s: %w", dockerid.Short(ep.ID), err)
		}
		if link != nil && link.Attrs().Statistics != nil {
			out = append(out, countersOf(ep, link.Attrs().Statistics))
		}
	}
	slices.SortFunc(out, func(a, b EndpointTraffic) int { return strings.Compare(a.Endpoint, b.Endpoint) })
	return out, nil
}

// inContainer reports whether a joined endpoint's link is in some
// container: after a reboot, or for a container that died while the plugin
// was down, it is nowhere. An endpoint without a recorded index cannot be
// looked for; it counts as there.
func (d *Driver) inContainer(ep endpointRecord, network networkRecord) (bool, error) {
	if ep.Ifindex == 0 {
		return true, nil
	}
	parent, err := d.links.lookup(network.Parent)
	if err != nil || parent == nil {
		return false, err
	}
	sock, ids, err := d.traffic.open()
	if err != nil {
		return false, err
	}
	defer sock.Close()
	link, err := d.traffic.find(sock, ids, ep, parent.Attrs().Index)
	return link != nil, err
}

// open opens an rtnetlink socket and lists the namespaces it can look into.
func (t *traffic) open() (*nl.SocketHandle, []int32, error) {
	sock, err := routeSocket(t.ns)
	if err != nil {
		return nil, nil, err
	}
	ids, err := netnsIDs(sock)
	if err != nil {
		sock.Close()
		return nil, nil, err
	}
	return sock, ids, nil
}

func countersOf(ep endpointRecord, s *netlink.LinkStatistics) EndpointTraffic {
	return EndpointTraffic{
		Network: ep.NetworkID, Endpoint: ep.ID, Sandbox: ep.Sandbox,
		RxBytes: s.RxBytes, RxPackets: s.RxPackets, TxBytes: s.TxBytes, TxPackets: s.TxPackets,
	}
}

// find looks for an endpoint's link where it was last seen, then in every
// namespace with an ID.
func (t *traffic) find(sock *nl.SocketHandle, ids []int32, ep endpointRecord, parentIndex int) (netlink.Link, error) {
	if parentIndex == 0 {
		return nil, nil
	}
	t.mu.Lock()
	last, known := t.where[ep.ID]
	t.mu.Unlock()
	if known {
		ids = append([]int32{last}, ids...)
	}
	for _, id := range ids {
		link, err := linkInNetns(sock, id, ep.Ifindex)
		if err != nil {
			return nil, err
		}
		if link != nil && link.Attrs().ParentIndex == parentIndex {
			t.mu.Lock()
			t.where[ep.ID] = id
			t.mu.Unlock()
			return link, nil
		}
	}
	return nil, nil
}

// routeSocket opens an rtnetlink socket in ns.
func routeSocket(ns netns.NsHandle) (*nl.SocketHandle, error) {
	sock, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink socket: %w", err)
	}
	return &nl.SocketHandle{Socket: sock}, nil
}

func onSocket(req *nl.NetlinkRequest, sock *nl.SocketHandle) *nl.NetlinkRequest {
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: sock}
	return req
}

// netnsIDs lists the IDs this namespace has given other namespaces.
func netnsIDs(sock *nl.SocketHandle) ([]int32, error) {
	req := onSocket(nl.NewNetlinkRequest(unix.RTM_GETNSID, unix.NLM_F_DUMP), sock)
	req.AddData(nl.NewRtGenMsg())
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWNSID)
	if err != nil {
		return nil, fmt.Errorf("list network namespace IDs: %w", err)
	}
	ids, err := parseNetnsIDs(msgs)
	if err != nil {
		return nil, fmt.Errorf("list network namespace IDs: %w", err)
	}
	return ids, nil
}

// parseNetnsIDs reads the IDs out of RTM_NEWNSID messages: a struct
// rtgenmsg padded to 4 bytes, then attributes. It checks every length
// itself: nl.ParseRouteAttr panics on an attribute longer than its message.
func parseNetnsIDs(msgs [][]byte) ([]int32, error) {
	var ids []int32
	for _, msg := range msgs {
		if len(msg) < unix.NLMSG_ALIGNTO {
			continue
		}
		for b := msg[unix.NLMSG_ALIGNTO:]; len(b) >= unix.SizeofRtAttr; {
			size := int(nl.NativeEndian().Uint16(b[0:2]))
			kind := nl.NativeEndian().Uint16(b[2:4])
			if size < unix.SizeofRtAttr || size > len(b) {
				return nil, fmt.Errorf("malformed netlink attribute of length %d in %d bytes", size, len(b))
			}
			if kind == unix.NETNSA_NSID && size >= unix.SizeofRtAttr+4 {
				if id := int32(nl.NativeEndian().Uint32(b[unix.SizeofRtAttr:])); id >= 0 {
					ids = append(ids, id)
				}
			}
			aligned := (size + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1)
			b = b[min(aligned, len(b)):]
		}
	}
	return ids, nil
}

// linkInNetns returns the link with index in the namespace with ID nsid, or
// nil when there is none.
func linkInNetns(sock *nl.SocketHandle, nsid int32, index int) (netlink.Link, error) {
	req := onSocket(nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK), sock)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_TARGET_NETNSID, nl.Uint32Attr(uint32(nsid))))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	switch {
	// ENODEV: no such link there; EINVAL: the namespace went away since
	// the ID was listed.
	case errors.Is(err, unix.ENODEV), errors.Is(err, unix.EINVAL):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get link %d in namespace ID %d: %w", index, nsid, err)
	case len(msgs) == 0:
		return nil, nil
	}
	return netlink.LinkDeserialize(nil, msgs[0])
}
