package ipam

import (
	"context"
	"net/netip"
	"slices"
	"strings"
)

// PoolUsage is one pool as the status view and the metrics show it.
type PoolUsage struct {
	ID      string
	Pool    netip.Prefix // the network's subnet
	Range   netip.Prefix // where this host allocates container addresses
	Gateway netip.Addr
	// Allocated counts addresses held inside Range, the gateway included
	// when it lies there; Free is what Range still offers. Free saturates
	// for IPv6 ranges of /64 and wider.
	Allocated uint64
	Free      uint64
}

// Pools reports every pool's usage, sorted by ID.
func (a *IPAM) Pools(ctx context.Context) ([]PoolUsage, error) {
	if err := a.lock(ctx); err != nil {
		return nil, err
	}
	defer a.unlock()
	out := make([]PoolUsage, 0, len(a.pools))
	for _, p := range a.pools {
		out = append(out, PoolUsage{
			ID: p.id, Pool: p.prefix, Range: p.rng, Gateway: p.gateway,
			Allocated: p.inRange, Free: p.usable - p.inRange,
		})
	}
	slices.SortFunc(out, func(x, y PoolUsage) int { return strings.Compare(x.ID, y.ID) })
	return out, nil
}
