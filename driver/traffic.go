package driver

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/dockerid"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/rtnl"
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

// inContainers reports which joined endpoints' links are in some
// container: after a reboot, or for a container that died while the plugin
// was down, a link is nowhere. An endpoint without a recorded index cannot
// be looked for; it counts as there. One dump of each namespace with an ID
// answers for all: asking every namespace for every link (find, before
// anything is remembered) would be a million requests for 1,000
// containers. It remembers where each link was found, for the traffic
// reads that follow.
func (d *Driver) inContainers(eps []endpointRecord) (map[string]bool, error) {
	sock, ids, err := d.traffic.open()
	if err != nil {
		return nil, err
	}
	defer sock.Close()
	all, err := ids()
	if err != nil {
		return nil, err
	}
	type placed struct{ index, parentIndex int }
	nsidOf := map[placed]int32{}
	for _, id := range all {
		links, err := linksInNetns(sock, id)
		if err != nil {
			return nil, err
		}
		for index, parentIndex := range links {
			nsidOf[placed{index, parentIndex}] = id
		}
	}
	parents := map[string]int{}
	found := map[string]bool{}
	for _, ep := range eps {
		network, ok := d.state.network(ep.NetworkID)
		if !ok {
			continue
		}
		if ep.Ifindex == 0 {
			found[ep.ID] = true // cannot be looked for: counts as there
			continue
		}
		if _, seen := parents[network.Parent]; !seen {
			parent, err := d.links.lookup(network.Parent)
			if err != nil {
				return nil, err
			}
			if parent != nil {
				parents[network.Parent] = parent.Attrs().Index
			}
		}
		if id, ok := nsidOf[placed{ep.Ifindex, parents[network.Parent]}]; ok && parents[network.Parent] != 0 {
			found[ep.ID] = true
			d.traffic.mu.Lock()
			d.traffic.where[ep.ID] = id
			d.traffic.mu.Unlock()
		}
	}
	return found, nil
}

// open opens a route socket and returns with it the lister of the
// namespaces it can look into, which lists them once, when first asked: a
// read whose links are all where they were last found asks for none (the
// list costs a dump and the probes past it, see netnsIDs).
func (t *traffic) open() (*rtnl.Conn, func() ([]int32, error), error) {
	sock, err := rtnl.Open(t.ns)
	if err != nil {
		return nil, nil, err
	}
	return sock, sync.OnceValues(func() ([]int32, error) { return netnsIDs(sock) }), nil
}

func countersOf(ep endpointRecord, s *netlink.LinkStatistics) EndpointTraffic {
	return EndpointTraffic{
		Network: ep.NetworkID, Endpoint: ep.ID, Sandbox: ep.Sandbox,
		RxBytes: s.RxBytes, RxPackets: s.RxPackets, TxBytes: s.TxBytes, TxPackets: s.TxPackets,
	}
}

// find looks for an endpoint's link where it was last seen, then in every
// namespace with an ID.
func (t *traffic) find(sock *rtnl.Conn, ids func() ([]int32, error), ep endpointRecord, parentIndex int) (netlink.Link, error) {
	if parentIndex == 0 {
		return nil, nil
	}
	t.mu.Lock()
	last, known := t.where[ep.ID]
	t.mu.Unlock()
	look := func(id int32) (netlink.Link, error) {
		link, err := linkInNetns(sock, id, ep.Ifindex)
		if err != nil || link == nil || link.Attrs().ParentIndex != parentIndex {
			return nil, err
		}
		t.mu.Lock()
		t.where[ep.ID] = id
		t.mu.Unlock()
		return link, nil
	}
	if known {
		if link, err := look(last); link != nil || err != nil {
			return link, err
		}
	}
	all, err := ids()
	if err != nil {
		return nil, err
	}
	for _, id := range all {
		if known && id == last {
			continue
		}
		if link, err := look(id); link != nil || err != nil {
			return link, err
		}
	}
	return nil, nil
}
