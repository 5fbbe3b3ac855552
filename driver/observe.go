package driver

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
)

// Network is a network as the status view and the metrics show it.
type Network struct {
	ID       string
	Parent   string
	Mode     string // l2, l3, l3s
	Announce string // host, subnet, none
	Pools    []netip.Prefix
	// Announced is what the network itself announces now: its subnet (or
	// this host's block of it) for announce=subnet or a budget fallback.
	Announced []route.Advert
}

// Endpoint is an endpoint as the status view and the metrics show it.
type Endpoint struct {
	ID        string
	NetworkID string
	Addresses []netip.Prefix
	Interface string // host-side name; Docker renames it in the container
	Sandbox   string // base name of Docker's SandboxKey, "" before Join
	Joined    bool
	Fallback  bool // past the route budget, reached through the subnet
	// Announced is what carries traffic to it now: its host routes, or its
	// network's subnet routes when the network announces those.
	Announced []route.Advert
}

// Networks lists the networks, sorted by ID.
func (d *Driver) Networks() []Network {
	records := d.state.allNetworks()
	out := make([]Network, 0, len(records))
	for _, n := range records {
		pools := make([]netip.Prefix, len(n.Pools))
		for i, p := range n.Pools {
			pools[i] = p.Prefix
		}
		out = append(out, Network{
			ID: n.ID, Parent: n.Parent, Mode: string(n.Config.Mode), Announce: string(n.Config.Announce),
			Pools: pools, Announced: d.announce.announced(n.ID),
		})
	}
	slices.SortFunc(out, func(a, b Network) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Endpoints lists the endpoints, sorted by ID.
func (d *Driver) Endpoints() []Endpoint {
	records := d.state.allEndpoints()
	out := make([]Endpoint, 0, len(records))
	for _, ep := range records {
		out = append(out, d.endpointView(ep))
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (d *Driver) endpointView(ep endpointRecord) Endpoint {
	network, _ := d.state.network(ep.NetworkID)
	return Endpoint{
		ID: ep.ID, NetworkID: ep.NetworkID, Addresses: slices.Clone(ep.Addresses),
		Interface: childName(ep.ID), Sandbox: ep.Sandbox, Joined: ep.Joined, Fallback: ep.Fallback,
		Announced: d.announce.announced(carrierOf(ep, network)),
	}
}
