// Package observe is what the operator's views read: the read-only sides of
// the network driver, the IPAM driver, the BGP speaker and the kernel route
// table. metrics and status are siblings over these interfaces; the plugin
// hands both the same Sources.
package observe

import (
	"context"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp"
	"github.com/ipvlan-bgp/ipvlan-bgp/driver"
	"github.com/ipvlan-bgp/ipvlan-bgp/fib"
	"github.com/ipvlan-bgp/ipvlan-bgp/ipam"
)

// Sources are the parts of the plugin the metrics and the status view
// read. A nil source leaves its metrics and its section out (BGP off: no
// peer metrics, no BGP section).
type Sources struct {
	Driver  Driver
	IPAM    Pools
	Speaker Speaker
	Kernel  Kernel
}

// Driver is the network driver's read-only side (*driver.Driver).
type Driver interface {
	Networks() []driver.Network
	Endpoints() []driver.Endpoint
	RouteBudget() driver.BudgetStatus
	Traffic(ctx context.Context) ([]driver.EndpointTraffic, error)
}

// Pools is the IPAM driver's read-only side (*ipam.IPAM).
type Pools interface {
	Pools(ctx context.Context) ([]ipam.PoolUsage, error)
}

// Speaker is the BGP speaker's read-only side (*bgp.Speaker).
type Speaker interface {
	Status(ctx context.Context) (bgp.Status, error)
}

// Kernel is the table of routes learned from peers (*fib.Table).
type Kernel interface {
	Routes() []fib.Route
}
