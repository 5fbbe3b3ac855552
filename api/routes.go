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
	// GwAllocChecker makes Docker 28+ ask GwAllocCheck whether a network
	// needs gateway addresses (older engines ignore it).
	GwAllocChecker bool
}

// ipamCapabilities adds RequiresRequestReplay, which the helpers lack: the
// plugin keeps its own allocations, so Docker need not replay them.
type ipamCapabilities struct {
	RequiresMACAddress    bool
	RequiresRequestReplay bool
}

// Calls served before start-up finishes (activation and capabilities must
// answer at once, or Docker marks the plugin dead) and those that wait.
var (
	immediate = spec{}
	// Fields every request of a kind must carry, as Docker always sends.
	network  = []string{"NetworkID"}
	endpoint = []string{"NetworkID", "EndpointID"}
)

func gated(needs ...string) spec { return spec{gated: true, needs: needs} }

func (s *Server) routeProtocol() {
	handle(s, "/Plugin.Activate", immediate, constant(activation{Implements: []string{"NetworkDriver", "IpamDriver"}}))
	// Local scope: each host keeps its own state. Global connectivity: the
	// same network on every host is one routed network across the fabric.
	handle(s, "/NetworkDriver.GetCapabilities", immediate, constant(networkCapabilities{Scope: "local", ConnectivityScope: "global", GwAllocChecker: true}))
	handle(s, "/IpamDriver.GetCapabilities", immediate, constant(ipamCapabilities{}))
	handle(s, "/IpamDriver.GetDefaultAddressSpaces", immediate, constant(ipamapi.AddressSpacesResponse{
		LocalDefaultAddressSpace:  LocalAddressSpace,
		GlobalDefaultAddressSpace: GlobalAddressSpace,
	}))
	// A swarm manager allocates network state only for global-scope
	// drivers; this one is local, so those calls never come from Docker.
	unsupported(s, "/NetworkDriver.AllocateNetwork", "a local-scope driver keeps its state on each host")
	unsupported(s, "/NetworkDriver.FreeNetwork", "a local-scope driver keeps its state on each host")
	// Swarm's node discovery carries nothing a routed network needs: BGP
	// finds the other hosts. Acknowledged once the request is whole, and
	// logged: the engine's view of the swarm, for the operator.
	discovery := spec{needs: []string{"DiscoveryType"}}
	handle(s, "/NetworkDriver.DiscoverNew", discovery, withoutAnswer(s.logDiscovery("swarm node discovered")))
	handle(s, "/NetworkDriver.DiscoverDelete", discovery, withoutAnswer(s.logDiscovery("swarm node gone")))
}

// logDiscovery logs a discovery notification as msg, with the node's
// address and whether it is this node when the data carries them (a node
// discovery, the only kind Docker passes to a remote driver); data of any
// other shape is logged without them, never refused.
func (s *Server) logDiscovery(msg string) func(context.Context, *netapi.DiscoveryNotification) error {
	return func(_ context.Context, req *netapi.DiscoveryNotification) error {
		log := s.log.WithField("discovery_type", req.DiscoveryType)
		data, _ := req.DiscoveryData.(map[string]any)
		if address, ok := data["Address"].(string); ok {
			self, _ := data["Self"].(bool)
			log = log.WithField("node", address).WithField("self", self)
		}
		log.Info(msg)
		return nil
	}
}

// bindNetwork and bindIPAM bind a driver method to the driver handed over at Ready:
// routes are registered before the drivers exist.
func bindNetwork[Req, Res any](s *Server, method func(NetworkDriver, context.Context, *Req) (*Res, error)) func(context.Context, *Req) (*Res, error) {
	return func(ctx context.Context, req *Req) (*Res, error) { return method(s.network, ctx, req) }
}

func bindIPAM[Req, Res any](s *Server, method func(IPAMDriver, context.Context, *Req) (*Res, error)) func(context.Context, *Req) (*Res, error) {
	return func(ctx context.Context, req *Req) (*Res, error) { return method(s.ipam, ctx, req) }
}

// noAnswer adapts a driver method that returns only an error.
func noAnswer[D, Req any](method func(D, context.Context, *Req) error) func(D, context.Context, *Req) (*empty, error) {
	return func(d D, ctx context.Context, req *Req) (*empty, error) { return nil, method(d, ctx, req) }
}

func (s *Server) routeNetwork() {
	handle(s, "/NetworkDriver.CreateNetwork", gated(network...), bindNetwork(s, noAnswer(NetworkDriver.CreateNetwork)))
	handle(s, "/NetworkDriver.DeleteNetwork", gated(network...), bindNetwork(s, noAnswer(NetworkDriver.DeleteNetwork)))
	handle(s, "/NetworkDriver.CreateEndpoint", gated(endpoint...), bindNetwork(s, NetworkDriver.CreateEndpoint))
	handle(s, "/NetworkDriver.DeleteEndpoint", gated(endpoint...), bindNetwork(s, noAnswer(NetworkDriver.DeleteEndpoint)))
	handle(s, "/NetworkDriver.EndpointOperInfo", gated(endpoint...), bindNetwork(s, NetworkDriver.EndpointInfo))
	handle(s, "/NetworkDriver.Join", gated(append(endpoint, "SandboxKey")...), bindNetwork(s, NetworkDriver.Join))
	handle(s, "/NetworkDriver.Leave", gated(endpoint...), bindNetwork(s, noAnswer(NetworkDriver.Leave)))
	handle(s, "/NetworkDriver.ProgramExternalConnectivity", gated(endpoint...), bindNetwork(s, noAnswer(NetworkDriver.ProgramExternalConnectivity)))
	handle(s, "/NetworkDriver.RevokeExternalConnectivity", gated(endpoint...), bindNetwork(s, noAnswer(NetworkDriver.RevokeExternalConnectivity)))
	handle(s, "/NetworkDriver.GwAllocCheck", gated("Options"), bindNetwork(s, NetworkDriver.GwAllocCheck))
}

func (s *Server) routeIPAM() {
	// Docker always sends every field of these requests (none is omitempty
	// on its side): AddressSpace and V6 tell a real RequestPool from "{}".
	handle(s, "/IpamDriver.RequestPool", gated("AddressSpace", "V6"), bindIPAM(s, IPAMDriver.RequestPool))
	handle(s, "/IpamDriver.ReleasePool", gated("PoolID"), bindIPAM(s, noAnswer(IPAMDriver.ReleasePool)))
	handle(s, "/IpamDriver.RequestAddress", gated("PoolID"), bindIPAM(s, IPAMDriver.RequestAddress))
	handle(s, "/IpamDriver.ReleaseAddress", gated("PoolID", "Address"), bindIPAM(s, noAnswer(IPAMDriver.ReleaseAddress)))
}
