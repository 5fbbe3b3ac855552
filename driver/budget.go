package driver

import (
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/badvalue"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/dockerid"
)

// BudgetFallback is what CreateEndpoint does once the route budget is spent.
type BudgetFallback string

const (
	// FallbackRefuse fails the endpoint: `docker run` shows why.
	FallbackRefuse BudgetFallback = "refuse"
	// FallbackSubnet announces the network's subnet (this host's block of
	// it) instead of the endpoint's host routes.
	FallbackSubnet BudgetFallback = "subnet"
)

// ParseBudget reads the route budget settings as the operator wrote them
// (ROUTE_BUDGET, ROUTE_BUDGET_FALLBACK): the one check of both, for the
// plugin's settings and for New.
func ParseBudget(limit, fallback string) (int, BudgetFallback, error) {
	n, err := strconv.Atoi(limit)
	if err != nil || n < 0 {
		return 0, "", &badvalue.Error{Kind: "setting", Name: "ROUTE_BUDGET", Value: limit, Reason: "want a number of routes, 0 for no limit"}
	}
	switch f := BudgetFallback(fallback); f {
	case FallbackRefuse, FallbackSubnet:
		return n, f, nil
	}
	return 0, "", &badvalue.Error{Kind: "setting", Name: "ROUTE_BUDGET_FALLBACK", Value: fallback, Reason: "want refuse or subnet"}
}

// BudgetError is the refusal `docker run` shows when the route budget is
// spent.
type BudgetError struct {
	Budget, Used, Wanted int
	Network              string
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("ipvlan-bgp: route budget of %d routes reached (%d announced or reserved on this host); "+
		"this container needs %d more host route(s) on network %s; raise ROUTE_BUDGET, remove containers, "+
		"set ROUTE_BUDGET_FALLBACK=subnet or use an announce=subnet network",
		e.Budget, e.Used, e.Wanted, dockerid.Short(e.Network))
}

// budget holds the limit and counts what it turned away.
type budget struct {
	limit    int // 0: no limit
	fallback BudgetFallback
	refused  atomic.Uint64
	fellBack atomic.Uint64
}

// BudgetStatus is the route budget as metrics and the status view show it.
type BudgetStatus struct {
	Limit    int            // 0: no limit
	Used     int            // routes announced or reserved by endpoints not yet running
	Fallback BudgetFallback // what happens past the limit
	Refused  uint64         // endpoints refused since start
	FellBack uint64         // endpoints announced through their network's subnet instead, since start
}

// RouteBudget reports the budget and how much of it is used.
func (d *Driver) RouteBudget() BudgetStatus {
	return BudgetStatus{
		Limit: d.budget.limit, Used: d.plannedRoutes(), Fallback: d.budget.fallback,
		Refused: d.budget.refused.Load(), FellBack: d.budget.fellBack.Load(),
	}
}

// plannedRoutes counts the routes this host announces, or will once every
// endpoint created so far runs: the subnets of networks that announce them
// and the host routes of endpoints of announce=host networks. Counting
// endpoints before they join is what lets CreateEndpoint refuse before
// anything exists.
func (d *Driver) plannedRoutes() int {
	routes := 0
	for _, n := range d.state.allNetworks() {
		if d.announcesSubnet(n) {
			routes += len(n.Pools)
		}
	}
	for _, ep := range d.state.allEndpoints() {
		if n, ok := d.state.network(ep.NetworkID); ok && n.Config.Announce == announceHost && !ep.Fallback {
			routes += len(ep.Addresses)
		}
	}
	return routes
}

// checkBudget decides whether a new endpoint's host routes fit the budget,
// marking it to fall back to the subnet when they do not and the operator
// chose that. The fallback is allowed past the budget: it adds at most one
// route per pool of the network, once, whatever the number of containers,
// which is what keeps the fabric's tables bounded. Called under d.changes,
// before anything is created.
func (d *Driver) checkBudget(ep *endpointRecord, network networkRecord) error {
	wanted := len(ep.Addresses)
	if d.budget.limit == 0 || network.Config.Announce != announceHost || wanted == 0 {
		return nil
	}
	used := d.plannedRoutes()
	if used+wanted <= d.budget.limit {
		return nil
	}
	log := d.log.WithFields(logrus.Fields{"network": network.ID, "endpoint": ep.ID, "budget": d.budget.limit, "used": used, "wanted": wanted})
	if d.budget.fallback == FallbackSubnet {
		ep.Fallback = true
		d.budget.fellBack.Add(1)
		log.Warn("route budget reached: announcing the network's subnet instead of the endpoint's host routes")
		return nil
	}
	d.budget.refused.Add(1)
	log.Warn("route budget reached: endpoint refused")
	return &BudgetError{Budget: d.budget.limit, Used: used, Wanted: wanted, Network: network.ID}
}
