// Package ipam is the plugin's IPAM driver. It hands out subnets (pools) and
// container addresses for ipvlan-bgp networks.
//
// A routed network usually spans hosts: every host runs the same
// `docker network create --subnet 10.244.0.0/16`, and each allocates only
// from its own block of that subnet (its LocalRanges entry, or --ip-range),
// so containers on all hosts share one subnet without colliding while BGP
// carries a route per address or per block.
//
// State lives in the store, one record per pool and one small record per
// allocated address, written before memory changes in one transaction per
// call: a restart restores everything and a failed call leaves nothing.
package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/logs"
	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

// Docker's option keys and labels.
const (
	optRequestAddressType = "RequestAddressType"
	labelGateway          = "com.docker.network.gateway"
)

// Config is the driver's part of the plugin settings.
type Config struct {
	Store *store.DB
	// DefaultPools are the ranges carved into pools when
	// `docker network create` gives no --subnet; IPv4 and IPv6.
	DefaultPools []netip.Prefix
	DefaultV4Len int // prefix length of a carved IPv4 pool; 0 means 24
	DefaultV6Len int // prefix length of a carved IPv6 pool; 0 means 64
	// LocalRanges are this host's blocks: in a pool containing one, this
	// host allocates only from it.
	LocalRanges []netip.Prefix
	// ClaimWindow is how long a pool or address may wait for its network
	// or container before a crash's leftover is reclaimed (reclaim.go); 0
	// means a minute.
	ClaimWindow time.Duration
	Log         *logrus.Entry
}

// IPAM implements api.IPAMDriver.
type IPAM struct {
	db           *store.DB
	log          *logrus.Entry
	defaultPools []netip.Prefix
	carveLen     map[bool]int // by "is IPv6"
	localRanges  []netip.Prefix

	// sem is the lock over pools: a channel, so waiting for it honours the
	// caller's context.
	sem   chan struct{}
	pools map[string]*pool // by PoolID
	users Users            // nil until SetUsers

	started     time.Time // when the state was loaded
	claimWindow time.Duration
}

// New checks cfg and loads the pools and allocations kept in the store.
func New(cfg Config) (*IPAM, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("ipam settings: %w", err)
	}
	a := &IPAM{
		db:           cfg.Store,
		log:          logs.For(cfg.Log, "ipam"),
		defaultPools: cfg.DefaultPools,
		carveLen:     map[bool]int{false: cfg.DefaultV4Len, true: cfg.DefaultV6Len},
		localRanges:  cfg.LocalRanges,
		sem:          make(chan struct{}, 1),
		pools:        map[string]*pool{},
		started:      time.Now(),
		claimWindow:  cfg.ClaimWindow,
	}
	if err := a.load(); err != nil {
		return nil, fmt.Errorf("load IPAM state from %s: %w", a.db.Path(), err)
	}
	return a, nil
}

// validate fills in default prefix lengths and checks every setting.
func (c *Config) validate() error {
	if c.Store == nil {
		return invalid("Store", "", "no state store given")
	}
	if c.DefaultV4Len == 0 {
		c.DefaultV4Len = 24
	}
	if c.DefaultV6Len == 0 {
		c.DefaultV6Len = 64
	}
	if c.ClaimWindow == 0 {
		c.ClaimWindow = defaultClaimWindow
	}
	if c.ClaimWindow < 0 {
		return invalid("ClaimWindow", c.ClaimWindow.String(), "must be positive")
	}
	if c.DefaultV4Len < 8 || c.DefaultV4Len > 30 {
		return invalid("DefaultV4Len", strconv.Itoa(c.DefaultV4Len), "must be between 8 and 30")
	}
	if c.DefaultV6Len < 16 || c.DefaultV6Len > 126 {
		return invalid("DefaultV6Len", strconv.Itoa(c.DefaultV6Len), "must be between 16 and 126")
	}
	if err := checkPrefixList("DefaultPools", c.DefaultPools); err != nil {
		return err
	}
	for _, p := range c.DefaultPools {
		name, bits := "DefaultV4Len", c.DefaultV4Len
		if p.Addr().Is6() {
			name, bits = "DefaultV6Len", c.DefaultV6Len
		}
		if p.Bits() > bits {
			return invalid("DefaultPools", p.String(), "smaller than the /%d pools %s carves from it", bits, name)
		}
	}
	return checkPrefixList("LocalRanges", c.LocalRanges)
}

// checkPrefixList checks each entry of a prefix-list setting, and that no
// two overlap (which one would apply would be a guess).
func checkPrefixList(setting string, list []netip.Prefix) error {
	for i, p := range list {
		if problem := prefixProblem(p); problem != "" {
			return invalid(setting, p.String(), "%s", problem)
		}
		for _, q := range list[:i] {
			if p.Overlaps(q) {
				return invalid(setting, p.String(), "overlaps %s, another entry of %s", q, setting)
			}
		}
	}
	return nil
}

func (a *IPAM) lock(ctx context.Context) error {
	select {
	case a.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for IPAM state: %w", ctx.Err())
	}
}

func (a *IPAM) unlock() { <-a.sem }

// LocalRange reports the block this host allocates from in pool: the
// --ip-range or LocalRanges entry inside it, or pool itself when neither
// narrows it. ok is false when pool is not a pool of this driver. The
// network driver announces this block for announce=subnet.
func (a *IPAM) LocalRange(pool netip.Prefix) (block netip.Prefix, ok bool) {
	_ = a.lock(context.Background())
	defer a.unlock()
	for _, p := range a.pools {
		if p.prefix == pool {
			return p.rng, true
		}
	}
	return netip.Prefix{}, false
}
