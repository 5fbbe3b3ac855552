// Package api is where Docker's calls enter the plugin: one unix socket
// serving both the NetworkDriver and the IpamDriver protocols. It decodes each
// request, hands it to the network driver or the IPAM driver with a context,
// and encodes the answer the way Docker reads it. Nothing here knows about
// links, addresses or BGP.
package api

import (
	"context"

	ipamapi "github.com/docker/go-plugins-helpers/ipam"
	netapi "github.com/docker/go-plugins-helpers/network"
)

// NetworkDriver is the network half of the plugin (package driver).
type NetworkDriver interface {
	CreateNetwork(ctx context.Context, req *netapi.CreateNetworkRequest) error
	DeleteNetwork(ctx context.Context, req *netapi.DeleteNetworkRequest) error
	CreateEndpoint(ctx context.Context, req *netapi.CreateEndpointRequest) (*netapi.CreateEndpointResponse, error)
	DeleteEndpoint(ctx context.Context, req *netapi.DeleteEndpointRequest) error
	EndpointInfo(ctx context.Context, req *netapi.InfoRequest) (*netapi.InfoResponse, error)
	Join(ctx context.Context, req *netapi.JoinRequest) (*JoinResponse, error)
	Leave(ctx context.Context, req *netapi.LeaveRequest) error
	ProgramExternalConnectivity(ctx context.Context, req *netapi.ProgramExternalConnectivityRequest) error
	RevokeExternalConnectivity(ctx context.Context, req *netapi.RevokeExternalConnectivityRequest) error
	GwAllocCheck(ctx context.Context, req *GwAllocCheckRequest) (*GwAllocCheckResponse, error)
}

// The calls and fields newer engines send that go-plugins-helpers lacks,
// shaped as moby's remote driver API (daemon/libnetwork/drivers/remote/api).

// JoinResponse is Join's answer, with InterfaceName.DstName: the name the
// link gets in the container, honoured by engines carrying moby#52866 (a
// name chosen with com.docker.network.endpoint.ifname); older engines name
// it DstPrefix and a number.
type JoinResponse struct {
	InterfaceName         InterfaceName
	Gateway               string
	GatewayIPv6           string
	StaticRoutes          []*netapi.StaticRoute
	DisableGatewayService bool
}

// InterfaceName names the link in the host (SrcName) and in the container.
type InterfaceName struct {
	SrcName   string
	DstName   string `json:",omitempty"`
	DstPrefix string
}

// GwAllocCheckRequest is what Docker 28+ asks a driver that declares
// GwAllocChecker before it allocates a network's gateways: the network's
// options, as CreateNetwork will carry them.
type GwAllocCheckRequest struct {
	Options map[string]any
}

// GwAllocCheckResponse tells Docker which families need no gateway address.
type GwAllocCheckResponse struct {
	SkipIPv4 bool
	SkipIPv6 bool
}

// IPAMDriver is the address-allocation half of the plugin (package ipam).
type IPAMDriver interface {
	RequestPool(ctx context.Context, req *ipamapi.RequestPoolRequest) (*ipamapi.RequestPoolResponse, error)
	ReleasePool(ctx context.Context, req *ipamapi.ReleasePoolRequest) error
	RequestAddress(ctx context.Context, req *ipamapi.RequestAddressRequest) (*ipamapi.RequestAddressResponse, error)
	ReleaseAddress(ctx context.Context, req *ipamapi.ReleaseAddressRequest) error
}
