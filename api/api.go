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
	Join(ctx context.Context, req *netapi.JoinRequest) (*netapi.JoinResponse, error)
	Leave(ctx context.Context, req *netapi.LeaveRequest) error
	ProgramExternalConnectivity(ctx context.Context, req *netapi.ProgramExternalConnectivityRequest) error
	RevokeExternalConnectivity(ctx context.Context, req *netapi.RevokeExternalConnectivityRequest) error
}

// IPAMDriver is the address-allocation half of the plugin (package ipam).
type IPAMDriver interface {
	RequestPool(ctx context.Context, req *ipamapi.RequestPoolRequest) (*ipamapi.RequestPoolResponse, error)
	ReleasePool(ctx context.Context, req *ipamapi.ReleasePoolRequest) error
	RequestAddress(ctx context.Context, req *ipamapi.RequestAddressRequest) (*ipamapi.RequestAddressResponse, error)
	ReleaseAddress(ctx context.Context, req *ipamapi.ReleaseAddressRequest) error
}
