package api

import (
	"context"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
	netapi "github.com/docker/go-plugins-helpers/network"
)

// empty stands for requests and answers without fields.
type empty struct{}

// withoutAnswer adapts a call that returns only an error.
func withoutAnswer[Req any](call func(context.Context, *Req) error) func(context.Context, *Req) (*empty, error) {
	return func(ctx context.Context, req *Req) (*empty, error) { return nil, call(ctx, req) }
}

// constant answers a call whose answer never changes.
func constant[Res any](res Res) func(context.Context, *empty) (*Res, error) {
	return func(context.Context, *empty) (*Res, error) { return &res, nil }
}

// activation names both protocols: one socket serves both drivers.
type activation struct {
	Implements []string
}

// networkCapabilities adds to the helpers' type the flag they lack.
type networkCapabilities struct {
	Scope             string
	ConnectivityScope string
}

// ipamCapabilities adds RequiresRequestReplay, which the helpers lack: the
// plugin keeps its own allocations, so Docker need not replay them.
type ipamCapabilities struct {
	RequiresMACAddress    bool
	RequiresRequestReplay bool
}

func (s *Server) routeProtocol() {
	handle(s, "/Plugin.Activate", false, constant(activation{Implements: []string{"NetworkDriver", "IpamDriver"}}))
	// Local scope: each host keeps its own state. Global connectivity: the
	// same network on every host is one routed network across the fabric.
	handle(s, "/NetworkDriver.GetCapabilities", false, constant(networkCapabilities{Scope: "local", ConnectivityScope: "global"}))
	handle(s, "/IpamDriver.GetCapabilities", false, constant(ipamCapabilities{}))
	handle(s, "/IpamDriver.GetDefaultAddressSpaces", false, constant(ipamapi.AddressSpacesResponse{
		LocalDefaultAddressSpace:  LocalAddressSpace,
		GlobalDefaultAddressSpace: GlobalAddressSpace,
	}))
	// AllocateNetwork and FreeNetwork are swarm-manager calls for global-scope
	// drivers, and discovery events carry nothing a routed network needs:
	// acknowledge them so Docker proceeds.
	handle(s, "/NetworkDriver.AllocateNetwork", false, func(context.Context, *netapi.AllocateNetworkRequest) (*netapi.AllocateNetworkResponse, error) {
		return &netapi.AllocateNetworkResponse{Options: map[string]string{}}, nil
	})
	handle(s, "/NetworkDriver.FreeNetwork", false, withoutAnswer(func(context.Context, *netapi.FreeNetworkRequest) error { return nil }))
	handle(s, "/NetworkDriver.DiscoverNew", false, withoutAnswer(func(context.Context, *netapi.DiscoveryNotification) error { return nil }))
	handle(s, "/NetworkDriver.DiscoverDelete", false, withoutAnswer(func(context.Context, *netapi.DiscoveryNotification) error { return nil }))
}

func (s *Server) routeNetwork() {
	n := s.network
	handle(s, "/NetworkDriver.CreateNetwork", true, withoutAnswer(n.CreateNetwork))
	handle(s, "/NetworkDriver.DeleteNetwork", true, withoutAnswer(n.DeleteNetwork))
	handle(s, "/NetworkDriver.CreateEndpoint", true, n.CreateEndpoint)
	handle(s, "/NetworkDriver.DeleteEndpoint", true, withoutAnswer(n.DeleteEndpoint))
	handle(s, "/NetworkDriver.EndpointOperInfo", true, n.EndpointInfo)
	handle(s, "/NetworkDriver.Join", true, n.Join)
	handle(s, "/NetworkDriver.Leave", true, withoutAnswer(n.Leave))
	handle(s, "/NetworkDriver.ProgramExternalConnectivity", true, withoutAnswer(n.ProgramExternalConnectivity))
	handle(s, "/NetworkDriver.RevokeExternalConnectivity", true, withoutAnswer(n.RevokeExternalConnectivity))
}

func (s *Server) routeIPAM() {
	i := s.ipam
	handle(s, "/IpamDriver.RequestPool", true, i.RequestPool)
	handle(s, "/IpamDriver.ReleasePool", true, withoutAnswer(i.ReleasePool))
	handle(s, "/IpamDriver.RequestAddress", true, i.RequestAddress)
	handle(s, "/IpamDriver.ReleaseAddress", true, withoutAnswer(i.ReleaseAddress))
}
