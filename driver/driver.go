// Package driver is the plugin's network driver: it turns Docker's network
// calls into ipvlan links on a parent NIC and tells the BGP speaker which
// prefixes to announce for them.
//
// One file per concern: options.go parses what the user typed, network.go,
// endpoint.go and joinleave.go answer Docker's calls, announce.go decides
// what is announced, links.go does all netlink work, state.go holds the
// records, reconcile.go squares the store with the kernel at start-up.
//
// Every call writes the store before memory, and orders its kernel and store
// steps so that a crash between any two of them leaves something Reconcile
// or a repeated Docker call puts right; each call's order is written above
// it.
package driver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"

	netapi "github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ipvlan-bgp/ipvlan-bgp/api"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/logs"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

// Config is what the plugin's main hands the driver.
type Config struct {
	Store     *store.DB
	Announcer route.Announcer // the BGP speaker; may be a no-op
	// Ranges may be nil: then announce=subnet announces the whole pool.
	Ranges LocalRanges
	// Netlink is nil for the current namespace; tests pass a handle in a
	// test namespace.
	Netlink *netlink.Handle
	// Netns is the namespace Netlink works in, for the requests a
	// netlink.Handle cannot make (counters of links in containers); zero
	// or netns.None() is the current namespace.
	Netns netns.NsHandle
	Log   *logrus.Entry
	// RouteBudget caps the routes this host announces; 0 is no cap.
	RouteBudget int
	// BudgetFallback is what happens past the cap; empty means refuse.
	BudgetFallback BudgetFallback
}

// LocalRanges is implemented by the IPAM driver: the block this host
// allocates from inside a pool, which is what a multi-host network announces
// from this host instead of the whole pool.
type LocalRanges interface {
	LocalRange(pool netip.Prefix) (netip.Prefix, bool)
}

// Driver is the network driver.
type Driver struct {
	db       *store.DB
	ranges   LocalRanges
	links    *links
	log      *logrus.Entry
	state    *state
	announce *announcements
	budget   *budget
	traffic  *traffic

	// changes serialises the calls that change state, so that a check
	// (overlapping subnets, the parent's mode) and the change it guards
	// are one step. The kernel work inside takes milliseconds.
	changes sync.Mutex

	// Watchers that announce an endpoint once Docker has moved its link
	// run until done is closed.
	done     chan struct{}
	watchers sync.WaitGroup
}

// New loads the networks and endpoints from the store. It touches neither
// the kernel nor the speaker: Reconcile does.
func New(cfg Config) (*Driver, error) {
	if cfg.Store == nil {
		return nil, errors.New("network driver: no state store")
	}
	if cfg.Announcer == nil {
		return nil, errors.New("network driver: no announcer")
	}
	if cfg.BudgetFallback == "" {
		cfg.BudgetFallback = FallbackRefuse
	}
	if _, _, err := ParseBudget(strconv.Itoa(cfg.RouteBudget), string(cfg.BudgetFallback)); err != nil {
		return nil, fmt.Errorf("network driver: route budget: %w", err)
	}
	log := logs.For(cfg.Log, "driver")
	d := &Driver{
		db:       cfg.Store,
		ranges:   cfg.Ranges,
		links:    newLinks(cfg.Netlink),
		log:      log,
		state:    newState(),
		announce: newAnnouncements(cfg.Announcer),
		budget:   &budget{limit: cfg.RouteBudget, fallback: cfg.BudgetFallback},
		traffic:  newTraffic(cfg.Netns),
		done:     make(chan struct{}),
	}
	if err := d.state.load(cfg.Store); err != nil {
		return nil, fmt.Errorf("load network driver state from %s: %w", cfg.Store.Path(), err)
	}
	return d, nil
}

// Close stops the watchers that wait for Docker to move links. It announces
// and withdraws nothing: on restart Reconcile picks up from the store.
func (d *Driver) Close() {
	d.changes.Lock()
	defer d.changes.Unlock()
	select {
	case <-d.done:
	default:
		close(d.done)
	}
	d.watchers.Wait()
}

// ProgramExternalConnectivity has nothing to do: a routed network publishes
// no ports, its containers are reached by their own addresses.
func (d *Driver) ProgramExternalConnectivity(_ context.Context, req *netapi.ProgramExternalConnectivityRequest) error {
	d.log.WithFields(logrus.Fields{"network": req.NetworkID, "endpoint": req.EndpointID}).Debug("external connectivity: nothing to program on a routed network")
	return nil
}

// RevokeExternalConnectivity: see ProgramExternalConnectivity.
func (d *Driver) RevokeExternalConnectivity(_ context.Context, req *netapi.RevokeExternalConnectivityRequest) error {
	d.log.WithFields(logrus.Fields{"network": req.NetworkID, "endpoint": req.EndpointID}).Debug("external connectivity: nothing to revoke on a routed network")
	return nil
}

// GwAllocCheck tells Docker 28+ which gateway addresses a network needs
// before it allocates them: none in L3 and L3S modes, where the parent
// routes for the containers and no address should be set aside; L2 keeps
// its gateway. Bad options are refused here, before any allocation.
func (d *Driver) GwAllocCheck(_ context.Context, req *api.GwAllocCheckRequest) (*api.GwAllocCheckResponse, error) {
	cfg, err := parseNetworkOptions(req.Options)
	if err != nil {
		return nil, err
	}
	skip := cfg.Mode != modeL2
	return &api.GwAllocCheckResponse{SkipIPv4: skip, SkipIPv6: skip}, nil
}

// undo logs the failure of a step that undoes partial work: the call
// already returns the error that made it undo.
func (d *Driver) undo(what string, err error, fields logrus.Fields) {
	if err != nil {
		d.log.WithFields(fields).WithError(err).Error("could not " + what + " while undoing a failed call")
	}
}
