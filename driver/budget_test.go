package driver

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	netapi "github.com/docker/go-plugins-helpers/network"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/dockerid"
)

// budgetEnv is a driver with a route budget and one announce=host network
// (10.7.0.0/24, fd00:7::/64) on eth0.
func budgetEnv(t *testing.T, limit int, fallback BudgetFallback) (*testEnv, string) {
	t.Helper()
	e := newTestEnv(t)
	e.tune = func(c *Config) { c.RouteBudget, c.BudgetFallback = limit, fallback }
	e.restart()
	network := networkID(7)
	mustCreateNetwork(t, e, networkReq(network, dualStack("10.7.0", "fd00:7"), "parent", "eth0"))
	return e, network
}

func TestRouteBudgetRefuses(t *testing.T) {
	e, network := budgetEnv(t, 3, FallbackRefuse)
	mustCreateEndpoint(t, e, endpointReq(network, endpointID(1), "10.7.0.5/24", "fd00:7::5/64"))
	mustCreateEndpoint(t, e, endpointReq(network, endpointID(2), "10.7.0.6/24", ""))
	if got := e.d.RouteBudget(); got.Used != 3 || got.Limit != 3 || got.Refused != 0 {
		t.Fatalf("budget %+v, want 3 of 3 used, nothing refused", got)
	}

	_, err := e.d.CreateEndpoint(ctx, endpointReq(network, endpointID(3), "10.7.0.7/24", ""))
	var be *BudgetError
	if !errors.As(err, &be) || be.Budget != 3 || be.Used != 3 || be.Wanted != 1 {
		t.Fatalf("CreateEndpoint past the budget: %v, want a BudgetError 3/3/1", err)
	}
	if !strings.Contains(err.Error(), "route budget of 3 routes reached") || !strings.Contains(err.Error(), "ROUTE_BUDGET") {
		t.Errorf("refusal %q does not tell the user the budget and the setting", err)
	}
	if _, found := e.d.state.endpoint(endpointID(3)); found || len(e.storedKeys(bucketEndpoints)) != 2 {
		t.Errorf("a refused endpoint left a record behind")
	}
	if got := e.d.RouteBudget(); got.Refused != 1 || got.Used != 3 {
		t.Errorf("budget after a refusal %+v, want 1 refused and 3 used", got)
	}

	// A deleted endpoint gives its routes back.
	if err := e.d.DeleteEndpoint(ctx, &netapi.DeleteEndpointRequest{NetworkID: network, EndpointID: endpointID(1)}); err != nil {
		t.Fatal(err)
	}
	mustCreateEndpoint(t, e, endpointReq(network, endpointID(3), "10.7.0.7/24", ""))
	if got := e.d.RouteBudget(); got.Used != 2 {
		t.Errorf("budget used %d after delete and create, want 2", got.Used)
	}
}

func TestRouteBudgetFallsBackToSubnet(t *testing.T) {
	e, network := budgetEnv(t, 1, FallbackSubnet)
	first, second, third := endpointID(1), endpointID(2), endpointID(3)
	mustCreateEndpoint(t, e, endpointReq(network, first, "10.7.0.5/24", ""))
	if got := e.ann.prefixes(network); got != nil {
		t.Fatalf("network announces %v within the budget, want nothing", got)
	}
	mustCreateEndpoint(t, e, endpointReq(network, second, "10.7.0.6/24", "fd00:7::6/64"))
	mustCreateEndpoint(t, e, endpointReq(network, third, "10.7.0.7/24", ""))
	e.ann.waitFor(t, network, "10.7.0.0/24", "fd00:7::/64")
	if got := e.d.RouteBudget(); got.FellBack != 2 || got.Refused != 0 || got.Used != 3 {
		t.Errorf("budget %+v, want 2 fallbacks, none refused, 3 routes (one host route and two subnets)", got)
	}
	for _, ep := range e.d.Endpoints() {
		wantFallback := ep.ID != first
		if ep.Fallback != wantFallback {
			t.Errorf("endpoint %s fallback %v, want %v", dockerid.Short(ep.ID), ep.Fallback, wantFallback)
		}
	}
	info, err := e.d.EndpointInfo(ctx, &netapi.InfoRequest{NetworkID: network, EndpointID: second})
	if err != nil || info.Value["budget_fallback"] != "true" || !strings.Contains(info.Value["announced"], "10.7.0.0/24") {
		t.Errorf("EndpointInfo %v (%v), want budget_fallback true and the subnet announced", info, err)
	}

	// The fallback survives a restart, and the subnet is withdrawn with the
	// last endpoint that needs it.
	e.restart()
	e.ann.waitFor(t, network, "10.7.0.0/24", "fd00:7::/64")
	for _, ep := range []string{second, third} {
		if err := e.d.DeleteEndpoint(ctx, &netapi.DeleteEndpointRequest{NetworkID: network, EndpointID: ep}); err != nil {
			t.Fatal(err)
		}
	}
	e.ann.waitFor(t, network)
	if got := e.d.Networks()[0].Announced; len(got) != 0 {
		t.Errorf("network still shows %v announced", got)
	}
}

func TestRouteBudgetIgnoresSubnetNetworksEndpoints(t *testing.T) {
	e, _ := budgetEnv(t, 3, FallbackRefuse)
	subnet := networkID(8)
	mustCreateNetwork(t, e, networkReq(subnet, dualStack("10.8.0", "fd00:8"), "parent", "eth0", "announce", "subnet"))
	for i := range 5 {
		mustCreateEndpoint(t, e, endpointReq(subnet, endpointID(10+i), fmt.Sprintf("10.8.0.%d/24", 5+i), ""))
	}
	if got := e.d.RouteBudget().Used; got != 2 {
		t.Errorf("budget used %d, want 2 (the subnet network's two pools, whatever its endpoints)", got)
	}
}

func TestNewRefusesBadBudget(t *testing.T) {
	e := newTestEnv(t)
	for _, cfg := range []Config{
		{Store: e.db, Announcer: e.ann, RouteBudget: -1},
		{Store: e.db, Announcer: e.ann, BudgetFallback: "drop"},
	} {
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "route budget") {
			t.Errorf("New(%+v) = %v, want a route budget error", cfg, err)
		}
	}
	if got := e.d.RouteBudget(); got.Fallback != FallbackRefuse || got.Limit != 0 {
		t.Errorf("default budget %+v, want no limit and refuse", got)
	}
}
