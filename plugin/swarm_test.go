package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	netapi "github.com/docker/go-plugins-helpers/network"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/dockertest"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
	"github.com/ipvlan-bgp/ipvlan-bgp/status"
)

// swarmNetworkID is the ID Docker 28.5 gave a `--scope swarm` network in
// the lab (scenario swarm): swarmkit's base 36, not Docker's hexadecimal.
const swarmNetworkID = "p54l6q32wh3wkaqx8f6c8kf3s"

// TestSwarmCalls sends the plugin binary what a swarm node's engine sends
// (seen in the lab on Docker 28.5, scenario swarm): node discovery, then at
// a task's start the network created locally under the swarm network's ID,
// with the config-only network's options and Docker's internal flag, the
// task's endpoint, and at the last task's end the deletes and releases.
// The manager's AllocateNetwork and FreeNetwork are for global-scope
// drivers only: this local-scope driver answers them as unsupported.
func TestSwarmCalls(t *testing.T) {
	testnet.RequireRoot(t)
	far := testnet.NewNS(t, "far")
	testnet.Veth(t, testnet.Host, "eth0", far, "far0")
	p := dockertest.Start(t, buildPlugin(t), "IPAM_LOCAL_RANGES=10.244.2.0/24,fd00:244:0:2::/64")
	d := p.Docker.As(dockertest.Docker28)

	node := netapi.DiscoveryNotification{DiscoveryType: 1, DiscoveryData: map[string]any{"Address": "192.168.100.11", "BindAddress": "0.0.0.0", "Self": false}}
	if err := d.Call("NetworkDriver.DiscoverNew", node, nil); err != nil {
		t.Errorf("DiscoverNew of a swarm node: %v", err)
	}
	if err := d.Call("NetworkDriver.AllocateNetwork", map[string]any{"NetworkID": swarmNetworkID}, nil); err == nil {
		t.Error("AllocateNetwork was accepted; a local-scope driver has nothing to allocate on the manager")
	}

	internal := false
	n, err := d.NetworkCreate(dockertest.NetworkSpec{ID: swarmNetworkID, Subnet: "10.244.0.0/16", IPv6: true, SubnetV6: "fd00:244::/48",
		Options: map[string]string{"parent": "eth0"}, Internal: &internal})
	if err != nil {
		t.Fatalf("CreateNetwork under a swarm network's ID: %v", err)
	}
	task, err := d.Run(n, dockerID(1, "e"), nil)
	if err != nil {
		t.Fatalf("a task's endpoint: %v", err)
	}
	if got := task.Addresses[n.Pools[0].ID]; !strings.HasPrefix(got, "10.244.2.") {
		t.Errorf("the task got %s, not an address of this node's block 10.244.2.0/24", got)
	}
	doc, err := status.Fetch(context.Background(), filepath.Join(p.Dir, "status.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Networks) != 1 || doc.Networks[0].ID != swarmNetworkID[:12] && doc.Networks[0].ID != swarmNetworkID {
		t.Errorf("networks %+v, want the swarm network alone", doc.Networks)
	}

	if err := d.Rm(n, task); err != nil {
		t.Fatalf("the task's end: %v", err)
	}
	if err := d.NetworkRm(n); err != nil {
		t.Fatalf("the node's last task gone, DeleteNetwork and the releases: %v", err)
	}
	if err := d.Call("NetworkDriver.DiscoverDelete", node, nil); err != nil {
		t.Errorf("DiscoverDelete of a swarm node: %v", err)
	}
	doc, err = status.Fetch(context.Background(), filepath.Join(p.Dir, "status.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Networks)+len(doc.Endpoints)+len(doc.Pools) != 0 {
		t.Errorf("left behind: networks %+v, endpoints %+v, pools %+v", doc.Networks, doc.Endpoints, doc.Pools)
	}
}
