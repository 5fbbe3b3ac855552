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

// network and ipam bind a driver method to the driver handed over at Ready:
// routes are registered before the drivers exist.
func network[Req, Res any](s *Server, method func(NetworkDriver, context.Context, *Req) (*Res, error)) func(context.Context, *Req) (*Res, error) {
	return func(ctx context.Context, req *Req) (*Res, error) { return method(s.network, ctx, req) }
}

func ipam[Req, Res any](s *Server, method func(IPAMDriver, context.Context, *Req) (*Res, error)) func(context.Context, *Req) (*Res, error) {
	return func(ctx context.Context, req *Req) (*Res, error) { return method(s.ipam, ctx, req) }
}

// noAnswer adapts a driver method that returns only an error.
func noAnswer[D, Req any](method func(D, context.Context, *Req) error) func(D, context.Context, *Req) (*empty, error) {
	return func(d D, ctx context.Context, req *Req) (*empty, error) { return nil, method(d, ctx, req) }
}

func (s *Server) routeNetwork() {
	handle(s, "/NetworkDriver.CreateNetwork", true, network(s, noAnswer(NetworkDriver.CreateNetwork)))
	handle(s, "/NetworkDriver.DeleteNetwork", true, network(s, noAnswer(NetworkDriver.DeleteNetwork)))
	handle(s, "/NetworkDriver.CreateEndpoint", true, network(s, NetworkDriver.CreateEndpoint))
	handle(s, "/NetworkDriver.DeleteEndpoint", true, network(s, noAnswer(NetworkDriver.DeleteEndpoint)))
	handle(s, "/NetworkDriver.EndpointOperInfo", true, network(s, NetworkDriver.EndpointInfo))
	handle(s, "/NetworkDriver.Join", true, network(s, NetworkDriver.Join))
	handle(s, "/NetworkDriver.Leave", true, network(s, noAnswer(NetworkDriver.Leave)))
	handle(s, "/NetworkDriver.ProgramExternalConnectivity", true, network(s, noAnswer(NetworkDriver.ProgramExternalConnectivity)))
	handle(s, "/NetworkDriver.RevokeExternalConnectivity", true, network(s, noAnswer(NetworkDriver.RevokeExternalConnectivity)))
}

func (s *Server) routeIPAM() {
	handle(s, "/IpamDriver.RequestPool", true, ipam(s, IPAMDriver.RequestPool))
	handle(s, "/IpamDriver.ReleasePool", true, ipam(s, noAnswer(IPAMDriver.ReleasePool)))
	handle(s, "/IpamDriver.RequestAddress", true, ipam(s, IPAMDriver.RequestAddress))
	handle(s, "/IpamDriver.ReleaseAddress", true, ipam(s, noAnswer(IPAMDriver.ReleaseAddress)))
}
