package driver

import (
	"net"
	"slices"
	"testing"

	netapi "github.com/docker/go-plugins-helpers/network"
	"github.com/vishvananda/netlink"

	"github.com/ipvlan-bgp/ipvlan-bgp/api"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/dockerid"
)

// These tests need ipvlan, 802.1q or dummy links. They skip where the
// kernel lacks them, and fail there when IPVLAN_BGP_REQUIRE_KERNEL=1 (the
// lab VM).

func dualStack(v4, v6 string) []*netapi.IPAMData {
	return []*netapi.IPAMData{ipam(v4+".0/24", v4+".1/24"), ipam(v6+"::/64", v6+"::1/64")}
}

// oneEndpoint creates network 1 on eth0 with endpoint 1 at 10.1.0.5.
func (e *testEnv) oneEndpoint() (network, endpoint string) {
	e.t.Helper()
	network, endpoint = networkID(1), endpointID(1)
	mustCreateNetwork(e.t, e, networkReq(network, dualStack("10.1.0", "fd00:1"), "parent", "eth0"))
	mustCreateEndpoint(e.t, e, endpointReq(network, endpoint, "10.1.0.5/24", ""))
	return network, endpoint
}

func (e *testEnv) join(network, endpoint string) *api.JoinResponse {
	e.t.Helper()
	resp, err := e.d.Join(ctx, &netapi.JoinRequest{NetworkID: network, EndpointID: endpoint, SandboxKey: "/var/run/docker/netns/test"})
	if err != nil {
		e.t.Fatalf("join %s: %v", dockerid.Short(endpoint), err)
	}
	return resp
}

// mustRepeat runs a Docker call twice: Docker repeats Leave, DeleteEndpoint
// and DeleteNetwork on rollback and at start-up.
func mustRepeat(t *testing.T, what string, call func() error) {
	t.Helper()
	for i := range 2 {
		if err := call(); err != nil {
			t.Fatalf("%s (call %d): %v", what, i+1, err)
		}
	}
}

func TestLifecycle(t *testing.T) {
	tests := []struct {
		mode, flag string
		kernelMode netlink.IPVlanMode
		kernelFlag netlink.IPVlanFlag
	}{
		{"l3", "bridge", netlink.IPVLAN_MODE_L3, netlink.IPVLAN_FLAG_BRIDGE},
		{"l3s", "private", netlink.IPVLAN_MODE_L3S, netlink.IPVLAN_FLAG_PRIVATE},
		{"l2", "vepa", netlink.IPVLAN_MODE_L2, netlink.IPVLAN_FLAG_VEPA},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			e := newTestEnv(t)
			e.requireLinkType("ipvlan")
			nw, ep := networkID(1), endpointID(1)
			name := childName(ep)
			mustCreateNetwork(t, e, networkReq(nw, dualStack("10.1.0", "fd00:1"), "parent", "eth0",
				"ipvlan_mode", tt.mode, "ipvlan_flag", tt.flag, "mtu", "1400", "communities", "65000:1"))
			mustCreateEndpoint(t, e, endpointReq(nw, ep, "10.1.0.5/24", "fd00:1::5/64"))

			resp := e.join(nw, ep)
			checkJoinResponse(t, resp, name, tt.mode == "l2")
			link, ok := e.link(name).(*netlink.IPVlan)
			if !ok {
				t.Fatalf("%s is a %s link", name, e.link(name).Type())
			}
			if link.Mode != tt.kernelMode || link.Flag != tt.kernelFlag || link.MTU != 1400 || link.ParentIndex != e.link("eth0").Attrs().Index {
				t.Errorf("link mode %d flag %d mtu %d parent %d, want %d %d 1400 on eth0", link.Mode, link.Flag, link.MTU, link.ParentIndex, tt.kernelMode, tt.kernelFlag)
			}
			if got := e.ann.prefixes(ep); got != nil {
				t.Errorf("announced %v before Docker moved the link", got)
			}
			e.moveToContainer(name)
			e.ann.waitFor(t, ep, "10.1.0.5/32", "fd00:1::5/128")
			// Its counters are found in the container by the index Join
			// recorded.
			if tr := e.trafficOf(ep); tr.Sandbox != "test" || tr.Network != nw {
				t.Errorf("traffic of the joined endpoint labelled sandbox %q network %s, want test and %s", tr.Sandbox, dockerid.Short(tr.Network), dockerid.Short(nw))
			}

			e.moveToHost(name) // Docker takes the link back out of a leaving container
			mustRepeat(t, "Leave", func() error { return e.d.Leave(ctx, &netapi.LeaveRequest{NetworkID: nw, EndpointID: ep}) })
			e.ann.waitFor(t, ep)
			if e.hasLink(name) {
				t.Error("Leave left the link in the host namespace")
			}
			mustRepeat(t, "DeleteEndpoint", func() error {
				return e.d.DeleteEndpoint(ctx, &netapi.DeleteEndpointRequest{NetworkID: nw, EndpointID: ep})
			})
			mustRepeat(t, "DeleteNetwork", func() error { return e.d.DeleteNetwork(ctx, &netapi.DeleteNetworkRequest{NetworkID: nw}) })
			if n, eps := e.storedKeys(bucketNetworks), e.storedKeys(bucketEndpoints); len(n)+len(eps) != 0 {
				t.Errorf("left in the store: networks %v, endpoints %v", n, eps)
			}
			if !e.hasLink("eth0") {
				t.Error("the operator's parent NIC was deleted")
			}
		})
	}
}

func checkJoinResponse(t *testing.T, resp *api.JoinResponse, name string, l2 bool) {
	t.Helper()
	if resp.InterfaceName != (api.InterfaceName{SrcName: name, DstPrefix: "eth"}) || !resp.DisableGatewayService {
		t.Errorf("interface %+v, gateway service disabled %v", resp.InterfaceName, resp.DisableGatewayService)
	}
	var routes []netapi.StaticRoute
	for _, r := range resp.StaticRoutes {
		routes = append(routes, *r)
	}
	if l2 {
		if resp.Gateway != "10.1.0.1" || resp.GatewayIPv6 != "fd00:1::1" || routes != nil {
			t.Errorf("l2: gateways %q %q, routes %+v; want the network's gateways", resp.Gateway, resp.GatewayIPv6, routes)
		}
		return
	}
	want := []netapi.StaticRoute{{Destination: "0.0.0.0/0", RouteType: routeConnected}, {Destination: "::/0", RouteType: routeConnected}}
	if resp.Gateway != "" || resp.GatewayIPv6 != "" || !slices.Equal(routes, want) {
		t.Errorf("l3: gateways %q %q, routes %+v; want connected default routes", resp.Gateway, resp.GatewayIPv6, routes)
	}
}

func TestJoinUndoesLinkWhenStoreFails(t *testing.T) {
	e := newTestEnv(t)
	e.requireLinkType("ipvlan")
	nw, ep := e.oneEndpoint()
	links := e.linkNames()
	_ = e.db.Close()
	if _, err := e.d.Join(ctx, &netapi.JoinRequest{NetworkID: nw, EndpointID: ep}); err == nil {
		t.Fatal("Join succeeded without its store")
	}
	if got := e.linkNames(); !slices.Equal(got, links) {
		t.Errorf("links changed from %v to %v", links, got)
	}
	if rec, _ := e.d.state.endpoint(ep); rec.Joined {
		t.Error("the endpoint is joined in memory")
	}
}

// TestJoinReplacesLeftoverLink: a Join repeated after a rollback that left
// the link behind makes a fresh one.
func TestJoinReplacesLeftoverLink(t *testing.T) {
	e := newTestEnv(t)
	e.requireLinkType("ipvlan")
	nw, ep := e.oneEndpoint()
	first := e.join(nw, ep)
	oldIndex := e.link(first.InterfaceName.SrcName).Attrs().Index
	e.join(nw, ep)
	if e.link(childName(ep)).Attrs().Index == oldIndex {
		t.Error("the leftover link was kept")
	}
}

func TestTwoNetworksShareParent(t *testing.T) {
	e := newTestEnv(t)
	e.requireLinkType("ipvlan")
	n1, n2, ep1, ep2 := networkID(1), networkID(2), endpointID(1), endpointID(2)
	mustCreateNetwork(t, e, networkReq(n1, dualStack("10.1.0", "fd00:1"), "parent", "eth0"))
	mustCreateNetwork(t, e, networkReq(n2, dualStack("10.2.0", "fd00:2"), "parent", "eth0"))
	mustCreateEndpoint(t, e, endpointReq(n1, ep1, "10.1.0.5/24", ""))
	mustCreateEndpoint(t, e, endpointReq(n2, ep2, "10.2.0.5/24", ""))
	e.join(n1, ep1)
	e.join(n2, ep2)
	eth0 := e.link("eth0").Attrs().Index
	for _, ep := range []string{ep1, ep2} {
		if p := e.link(childName(ep)).Attrs().ParentIndex; p != eth0 {
			t.Errorf("%s hangs off link %d, want eth0 (%d)", childName(ep), p, eth0)
		}
	}
	// Deleting a network Docker never emptied takes its endpoints along.
	if err := e.d.DeleteNetwork(ctx, &netapi.DeleteNetworkRequest{NetworkID: n1}); err != nil {
		t.Fatal(err)
	}
	if e.hasLink(childName(ep1)) || !e.hasLink(childName(ep2)) || !e.hasLink("eth0") {
		t.Errorf("after deleting network 1: links %v", e.linkNames())
	}
	if got := e.storedKeys(bucketEndpoints); !slices.Equal(got, []string{ep2}) {
		t.Errorf("stored endpoints %v, want only %s", got, dockerid.Short(ep2))
	}
}

func TestVLANParent(t *testing.T) {
	e := newTestEnv(t)
	e.requireLinkType("vlan")
	eth0 := e.link("eth0").Attrs().Index
	operators := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "eth0.200", ParentIndex: eth0}, VlanId: 200}
	if err := e.h.LinkAdd(operators); err != nil {
		t.Fatal(err)
	}
	n1, n2, n3 := networkID(1), networkID(2), networkID(3)
	mustCreateNetwork(t, e, networkReq(n1, dualStack("10.1.0", "fd00:1"), "parent", "eth0.100"))
	vlan, ok := e.link("eth0.100").(*netlink.Vlan)
	if !ok || vlan.VlanId != 100 || vlan.ParentIndex != eth0 || vlan.Alias != ownerAlias || vlan.Flags&net.FlagUp == 0 {
		t.Fatalf("eth0.100: %+v", e.link("eth0.100").Attrs())
	}
	mustCreateNetwork(t, e, networkReq(n2, dualStack("10.2.0", "fd00:2"), "parent", "eth0.100"))
	mustCreateNetwork(t, e, networkReq(n3, dualStack("10.3.0", "fd00:3"), "parent", "eth0.200"))

	err := e.d.CreateNetwork(ctx, networkReq(networkID(4), dualStack("10.4.0", "fd00:4"), "parent", "eth0.101", "mtu", "9000"))
	checkOptionError(t, err, "mtu", "above the MTU of parent eth0.101")
	if e.hasLink("eth0.101") {
		t.Error("a refused network left its VLAN behind")
	}

	deleteNetwork := func(id string) {
		t.Helper()
		if err := e.d.DeleteNetwork(ctx, &netapi.DeleteNetworkRequest{NetworkID: id}); err != nil {
			t.Fatal(err)
		}
	}
	deleteNetwork(n1)
	e.restart()
	if !e.hasLink("eth0.100") {
		t.Fatal("the VLAN was deleted while network 2 still uses it")
	}
	deleteNetwork(n2)
	if e.hasLink("eth0.100") {
		t.Error("the VLAN outlived its last network")
	}
	deleteNetwork(n3)
	if !e.hasLink("eth0.200") {
		t.Error("the operator's own VLAN was deleted")
	}
}

func TestDummyParent(t *testing.T) {
	e := newTestEnv(t)
	e.requireLinkType("dummy")
	nw := networkID(1)
	req := networkReq(nw, dualStack("10.1.0", "fd00:1"), "mtu", "9000")
	req.Options[dockerInternal] = true
	mustCreateNetwork(t, e, req)
	dummy := e.link(dummyName(nw))
	if dummy.Type() != "dummy" || dummy.Attrs().MTU != 9000 || dummy.Attrs().Alias != ownerAlias || dummy.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("%s: type %s, %+v", dummyName(nw), dummy.Type(), dummy.Attrs())
	}
	if rec, _ := e.d.state.network(nw); rec.Config.Announce != announceNone || rec.ParentOwned != parentDummy {
		t.Errorf("record %+v", rec)
	}
	e.restart()
	if err := e.d.DeleteNetwork(ctx, &netapi.DeleteNetworkRequest{NetworkID: nw}); err != nil {
		t.Fatal(err)
	}
	if e.hasLink(dummyName(nw)) {
		t.Error("the dummy parent outlived its network")
	}
}

func (e *testEnv) addLink(link netlink.Link) {
	e.t.Helper()
	if err := e.h.LinkAdd(link); err != nil {
		e.t.Fatalf("add %s link %s: %v", link.Type(), link.Attrs().Name, err)
	}
}

func (e *testEnv) ipvlanOnEth0(name string) *netlink.IPVlan {
	return &netlink.IPVlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: e.link("eth0").Attrs().Index}, Mode: netlink.IPVLAN_MODE_L3}
}

// TestReconcile crashes the plugin with leftovers of every kind, "reboots"
// away its VLAN, and checks a restart puts all of it right.
func TestReconcile(t *testing.T) {
	e := newTestEnv(t)
	e.requireLinkType("ipvlan")
	e.requireLinkType("vlan")
	e.requireLinkType("dummy")
	nA, nB, joined, unjoined := networkID(1), networkID(2), endpointID(1), endpointID(2)
	mustCreateNetwork(t, e, networkReq(nA, dualStack("10.1.0", "fd00:1"), "parent", "eth0"))
	mustCreateNetwork(t, e, networkReq(nB, dualStack("10.2.0", "fd00:2"), "parent", "eth0.100"))
	mustCreateEndpoint(t, e, endpointReq(nA, joined, "10.1.0.5/24", ""))
	mustCreateEndpoint(t, e, endpointReq(nA, unjoined, "10.1.0.6/24", ""))
	e.join(nA, joined) // Docker has not moved it yet
	e.stop()

	e.addLink(e.ipvlanOnEth0(childName(unjoined)))         // crash inside Join, before the store
	e.addLink(e.ipvlanOnEth0(childPrefix + "0123456789a")) // an endpoint the store forgot
	e.addLink(e.ipvlanOnEth0("keep0"))                     // someone else's
	e.addLink(&netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "eth0.300", ParentIndex: e.link("eth0").Attrs().Index}, VlanId: 300})
	if err := e.h.LinkSetAlias(e.link("eth0.300"), ownerAlias); err != nil { // a crash inside CreateNetwork
		t.Fatal(err)
	}
	// Crashes inside createParent, before the mark: a VLAN still under its
	// temporary name, a dummy not yet marked.
	e.addLink(&netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: vlanPrefix + "00000000ab", ParentIndex: e.link("eth0").Attrs().Index}, VlanId: 301})
	e.addLink(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: dummyName(networkID(9))}})
	e.addLink(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "dummy7"}}) // someone else's
	if err := e.h.LinkDel(e.link("eth0.100")); err != nil {                 // a reboot
		t.Fatal(err)
	}
	e.start()

	got := e.linkNames()
	for name, want := range map[string]bool{
		"eth0.100": true, "eth0.300": false, childName(joined): true, childName(unjoined): false,
		childPrefix + "0123456789a": false, "keep0": true,
		vlanPrefix + "00000000ab": false, dummyName(networkID(9)): false, "dummy7": true,
	} {
		if slices.Contains(got, name) != want {
			t.Errorf("after Reconcile link %s present=%v, want %v (links %v)", name, !want, want, got)
		}
	}
	if e.hasLink("eth0.100") && e.link("eth0.100").Attrs().Alias != ownerAlias {
		t.Error("the recreated VLAN is not marked as the plugin's")
	}
	if p := e.ann.prefixes(joined); p != nil {
		t.Errorf("announced %v while the link is in the host", p)
	}
	e.moveToContainer(childName(joined))
	e.ann.waitFor(t, joined, "10.1.0.5/32")
}

// TestRestartKeepsJoinedEndpoint: an endpoint in a container is announced
// again by Reconcile alone, and Leave/DeleteEndpoint work after the
// restart, in the order Docker may call them.
func TestRestartKeepsJoinedEndpoint(t *testing.T) {
	e := newTestEnv(t)
	e.requireLinkType("ipvlan")
	nw, ep := networkID(1), endpointID(1)
	mustCreateNetwork(t, e, networkReq(nw, dualStack("10.1.0", "fd00:1"), "parent", "eth0"))
	mustCreateEndpoint(t, e, endpointReq(nw, ep, "10.1.0.5/24", "fd00:1::5/64"))
	e.join(nw, ep)
	e.moveToContainer(childName(ep))
	e.ann.waitFor(t, ep, "10.1.0.5/32", "fd00:1::5/128")

	e.restartAndLeave(nw, ep, 2)
	e.moveToHost(childName(ep)) // Docker moves it back after Leave
	if err := e.d.DeleteEndpoint(ctx, &netapi.DeleteEndpointRequest{NetworkID: nw, EndpointID: ep}); err != nil {
		t.Fatal(err)
	}
	if e.hasLink(childName(ep)) {
		t.Error("DeleteEndpoint left the link in the host namespace")
	}
}
