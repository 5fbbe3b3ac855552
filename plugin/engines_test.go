package main

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	netapi "github.com/docker/go-plugins-helpers/network"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/dockertest"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
	"github.com/ipvlan-bgp/ipvlan-bgp/status"
)

// TestNewerEngines sends the plugin binary the calls Docker 28 and 29 send,
// shaped as those engines send them (no Debian suite carries Docker 29; the
// lab runs Docker 28.5 itself): GwAllocCheck leaves L3 networks without a
// gateway address and L2 ones with theirs, an IPv6-only network gets only
// an IPv6 pool and address, a pool asked for by size is carved, and the
// gateway-change calls of Docker 29 are accepted.
func TestNewerEngines(t *testing.T) {
	testnet.RequireRoot(t)
	far := testnet.NewNS(t, "far")
	testnet.Veth(t, testnet.Host, "eth0", far, "far0")
	testnet.Veth(t, testnet.Host, "eth1", far, "far1")
	p := superviseBinary(t, buildPlugin(t))
	d28, d29 := p.Docker.As(dockertest.Docker28), p.Docker.As(dockertest.Docker29)
	eth0 := map[string]string{"parent": "eth0"}

	l3, err := d28.NetworkCreate(dockertest.NetworkSpec{ID: dockerID(1, "c"), Subnet: "10.78.0.0/24", Options: eth0})
	if err != nil {
		t.Fatal(err)
	}
	if l3.Pools[0].Gateway != "" {
		t.Errorf("an L3 network on Docker 28 got gateway %s; want none", l3.Pools[0].Gateway)
	}
	first, err := d28.Run(l3, dockerID(1, "e"), nil)
	if err != nil || first.Addresses[l3.Pools[0].ID] != "10.78.0.1" {
		t.Errorf("first container of the L3 network: %+v, %v; want 10.78.0.1, no address set aside", first, err)
	}

	l2, err := d28.NetworkCreate(dockertest.NetworkSpec{ID: dockerID(2, "c"), Subnet: "10.79.0.0/24",
		Options: map[string]string{"parent": "eth1", "ipvlan_mode": "l2"}})
	if err != nil || l2.Pools[0].Gateway != "10.79.0.1/24" {
		t.Fatalf("an L2 network on Docker 28: %+v, %v; want gateway 10.79.0.1/24", l2, err)
	}

	v6only, err := d28.NetworkCreate(dockertest.NetworkSpec{ID: dockerID(3, "c"), NoIPv4: true, IPv6: true, SubnetV6: "fd00:78::/64", Options: eth0})
	if err != nil || len(v6only.Pools) != 1 || !v6only.Pools[0].V6 {
		t.Fatalf("an IPv6-only network on Docker 28: %+v, %v", v6only, err)
	}
	c6, err := d28.Run(v6only, dockerID(3, "e"), map[string]any{"com.docker.network.endpoint.ifname": "data0"})
	if err != nil || len(c6.Addresses) != 1 || c6.Addresses[v6only.Pools[0].ID] != "fd00:78::1" {
		t.Errorf("a container of the IPv6-only network: %+v, %v; want fd00:78::1 alone", c6, err)
	}

	sized, err := d29.NetworkCreate(dockertest.NetworkSpec{ID: dockerID(4, "c"), Subnet: "0.0.0.0/24", Options: eth0})
	if err != nil || sized.Pools[0].Subnet != "10.248.0.0/24" {
		t.Errorf("a /24 asked for by size (Docker 29): %+v, %v; want 10.248.0.0/24 from IPAM_DEFAULT_POOLS", sized, err)
	}

	// Docker 29 tells a driver when an endpoint becomes or stops being the
	// container's gateway: nothing to do on a routed network, but accepted.
	for method, req := range map[string]any{
		"NetworkDriver.ProgramExternalConnectivity": netapi.ProgramExternalConnectivityRequest{NetworkID: l3.ID, EndpointID: first.Endpoint,
			Options: map[string]any{"com.docker.network.endpoint.exposedports": []any{}, "com.docker.network.portmap": []any{},
				"com.docker.network.driver.private.no_proxy_6to4": true}},
		"NetworkDriver.RevokeExternalConnectivity": netapi.RevokeExternalConnectivityRequest{NetworkID: l3.ID, EndpointID: first.Endpoint},
	} {
		if err := d29.Call(method, req, nil); err != nil {
			t.Errorf("%s: %v", method, err)
		}
	}

	doc, err := status.Fetch(context.Background(), filepath.Join(p.Dir, "status.sock"))
	if err != nil {
		t.Fatal(err)
	}
	gateways := map[string]string{}
	for _, pl := range doc.Pools {
		gateways[pl.Pool] = pl.Gateway
	}
	want := map[string]string{"10.78.0.0/24": "none", "10.79.0.0/24": "10.79.0.1", "fd00:78::/64": "none", "10.248.0.0/24": "none"}
	for pool, gw := range want {
		if gateways[pool] != gw {
			t.Errorf("pool %s: gateway %q, want %q (all pools: %v)", pool, gateways[pool], gw, gateways)
		}
	}
	for _, n := range doc.Networks {
		if n.ID == v6only.ID && !slices.Equal(n.Subnets, []string{"fd00:78::/64"}) {
			t.Errorf("the IPv6-only network has subnets %v", n.Subnets)
		}
	}
}
