package driver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	netapi "github.com/docker/go-plugins-helpers/network"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ipvlan-bgp/ipvlan-bgp/api"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/dockerid"
	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

// Docker calls the driver through the api package's interface.
var _ api.NetworkDriver = (*Driver)(nil)

var ctx = context.Background()

// These tests run on any kernel with veth: eth0 is the parent NIC.

func TestCreateNetworkRejects(t *testing.T) {
	v4 := []*netapi.IPAMData{ipam("10.1.0.0/24", "10.1.0.1/24")}
	tests := []struct {
		name           string
		first          *netapi.CreateNetworkRequest // created before, must survive
		req            *netapi.CreateNetworkRequest
		option, reason string
	}{
		{name: "missing parent", req: networkReq(networkID(1), v4, "parent", "eth9"), option: "parent", reason: "no such network interface"},
		// What a node gets for a --scope swarm network made without a
		// config-only network: Swarm dropped -o parent (seen on Docker 28.5).
		{name: "swarm network without a parent", req: networkReq("jk88c73gkbef2dtc2stp8rmer", v4), option: "parent", reason: "--config-from a --config-only network"},
		{name: "missing NIC under a VLAN", req: networkReq(networkID(1), v4, "parent", "eth9.5"), option: "parent", reason: "eth9"},
		{name: "loopback", req: networkReq(networkID(1), v4, "parent", "lo"), option: "parent", reason: "loopback"},
		{name: "mtu above the parent's", req: networkReq(networkID(1), v4, "parent", "eth0", "mtu", "9000"), option: "mtu", reason: "(1500)"},
		{name: "unknown option", req: networkReq(networkID(1), v4, "parent", "eth0", "macvlan_mode", "bridge"), option: "macvlan_mode", reason: "unknown"},
		{name: "IPv6 below 1280", req: networkReq(networkID(1), []*netapi.IPAMData{ipam("fd00:1::/64", "")}, "parent", "eth0", "mtu", "1200"), option: "mtu", reason: "1280"},
		{name: "bad pool", req: networkReq(networkID(1), []*netapi.IPAMData{ipam("10.1.0.0/33", "")}, "parent", "eth0"), option: "subnet", reason: "IPv4"},
		{name: "default route as the subnet", req: networkReq(networkID(1), []*netapi.IPAMData{ipam("0.0.0.0/0", "")}, "parent", "eth0", "announce", "subnet"),
			option: "announce", reason: "0.0.0.0/0 is shorter than /16, the shortest prefix this host announces: name it in BGP_EXPORT_ALLOW"},
		{name: "half the Internet as the subnet", req: networkReq(networkID(1), []*netapi.IPAMData{ipam("128.0.0.0/1", "")}, "parent", "eth0", "announce", "subnet"),
			option: "announce", reason: "128.0.0.0/1 is shorter than /16"},
		{name: "a broad IPv6 subnet", req: networkReq(networkID(1), []*netapi.IPAMData{ipam("10.1.0.0/24", ""), ipam("fd00::/16", "")}, "parent", "eth0", "announce", "subnet"),
			option: "announce", reason: "fd00::/16 is shorter than /48"},
		{
			name:   "overlapping subnet",
			first:  networkReq(networkID(2), []*netapi.IPAMData{ipam("10.1.0.0/16", "")}, "parent", "eth0"),
			req:    networkReq(networkID(1), v4, "parent", "eth0"),
			option: "subnet", reason: "overlaps 10.1.0.0/16 of network 02cccccccccc",
		},
		{
			name:   "another mode on a shared parent",
			first:  networkReq(networkID(2), []*netapi.IPAMData{ipam("10.2.0.0/16", "")}, "parent", "eth0"),
			req:    networkReq(networkID(1), v4, "parent", "eth0", "ipvlan_mode", "l2"),
			option: "ipvlan_mode", reason: "network 02cccccccccc uses parent eth0 with ipvlan_mode=l3, and network 01cccccccccc",
		},
		{
			name:   "another flag on a shared parent",
			first:  networkReq(networkID(2), []*netapi.IPAMData{ipam("10.2.0.0/16", "")}, "parent", "eth0"),
			req:    networkReq(networkID(1), v4, "parent", "eth0", "ipvlan_flag", "private"),
			option: "ipvlan_flag", reason: "ipvlan_flag=bridge",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			var want []string
			if tt.first != nil {
				if err := e.d.CreateNetwork(ctx, tt.first); err != nil {
					t.Fatalf("first network: %v", err)
				}
				want = []string{tt.first.NetworkID}
			}
			links := e.linkNames()
			err := e.d.CreateNetwork(ctx, tt.req)
			checkOptionError(t, err, tt.option, tt.reason)
			if got := e.storedKeys(bucketNetworks); !slices.Equal(got, want) {
				t.Errorf("stored networks %v, want %v", got, want)
			}
			if got := e.linkNames(); !slices.Equal(got, links) {
				t.Errorf("links changed from %v to %v", links, got)
			}
		})
	}
}

func TestCreateNetworkRejectsBadIDs(t *testing.T) {
	e := newTestEnv(t)
	for _, id := range []string{"", "net1", "../x/" + networkID(1)} {
		if err := e.d.CreateNetwork(ctx, networkReq(id, nil, "parent", "eth0")); err == nil || !strings.Contains(err.Error(), "not a Docker ID") {
			t.Errorf("network ID %q: got %v, want a refusal", id, err)
		}
	}
	for _, id := range []string{"", "net1"} {
		for name, err := range map[string]error{
			"DeleteNetwork":  e.d.DeleteNetwork(ctx, &netapi.DeleteNetworkRequest{NetworkID: id}),
			"DeleteEndpoint": e.d.DeleteEndpoint(ctx, &netapi.DeleteEndpointRequest{NetworkID: networkID(1), EndpointID: id}),
			"Leave":          e.d.Leave(ctx, &netapi.LeaveRequest{NetworkID: networkID(1), EndpointID: id}),
		} {
			if err == nil || !strings.Contains(err.Error(), "not a Docker ID") {
				t.Errorf("%s of %q: got %v, want a refusal (a delete of nothing must not pass for a delete)", name, id, err)
			}
		}
	}
}

// TestCreateCallsReplay: CreateNetwork and CreateEndpoint sent again after a
// crash (their first answers lost) get the same answers; a different
// request under the same ID is refused; deletes can be repeated.
func TestCreateCallsReplay(t *testing.T) {
	e := newTestEnv(t)
	nw, ep := networkID(1), endpointID(1)
	pools := []*netapi.IPAMData{ipam("10.1.0.0/24", "")}
	mustCreateNetwork(t, e, networkReq(nw, pools, "parent", "eth0", "announce", "subnet"))
	mustCreateEndpoint(t, e, endpointReq(nw, ep, "10.1.0.5/24", ""))
	e.restart()
	mustCreateNetwork(t, e, networkReq(nw, pools, "parent", "eth0", "announce", "subnet"))
	mustCreateEndpoint(t, e, endpointReq(nw, ep, "10.1.0.5/24", ""))
	if err := e.d.CreateNetwork(ctx, networkReq(nw, pools, "parent", "eth0")); err == nil || !strings.Contains(err.Error(), "already exists with other options") {
		t.Errorf("another network under the same ID: %v", err)
	}
	if _, err := e.d.CreateEndpoint(ctx, endpointReq(nw, ep, "10.1.0.6/24", "")); err == nil || !strings.Contains(err.Error(), "already exists with other addresses") {
		t.Errorf("another endpoint under the same ID: %v", err)
	}
	_, err := e.d.CreateEndpoint(ctx, endpointReq(nw, endpointID(2), "10.1.0.5/24", ""))
	checkOptionError(t, err, "ip", "endpoint 01eeeeeeeeee of network 01cccccccccc already has it")
	if got := e.storedKeys(bucketEndpoints); !slices.Equal(got, []string{ep}) {
		t.Errorf("stored endpoints %v, want only %s", got, dockerid.Short(ep))
	}
	for range 2 {
		if err := e.d.DeleteEndpoint(ctx, &netapi.DeleteEndpointRequest{NetworkID: nw, EndpointID: ep}); err != nil {
			t.Fatal(err)
		}
		if err := e.d.DeleteNetwork(ctx, &netapi.DeleteNetworkRequest{NetworkID: nw}); err != nil {
			t.Fatal(err)
		}
	}
	if len(e.storedKeys(bucketNetworks)) != 0 || len(e.ann.prefixes(nw)) != 0 {
		t.Errorf("after deletes: networks %v, announced %v", e.storedKeys(bucketNetworks), e.ann.prefixes(nw))
	}
}

// TestAddressReleasedForgetsEndpoint: the IPAM driver's release of an
// address a stored endpoint still has (Docker rolling back a CreateEndpoint
// whose answer it never got) deletes that endpoint, so the address is free
// for the next container.
func TestAddressReleasedForgetsEndpoint(t *testing.T) {
	e := newTestEnv(t)
	nw, lost, kept := networkID(1), endpointID(1), endpointID(2)
	mustCreateNetwork(t, e, networkReq(nw, []*netapi.IPAMData{ipam("10.1.0.0/24", "")}, "parent", "eth0"))
	mustCreateEndpoint(t, e, endpointReq(nw, lost, "10.1.0.5/24", ""))
	mustCreateEndpoint(t, e, endpointReq(nw, kept, "10.1.0.6/24", ""))
	if !e.d.HoldsAddress(netip.MustParseAddr("10.1.0.5")) || e.d.HoldsAddress(netip.MustParseAddr("10.1.0.7")) {
		t.Fatal("HoldsAddress does not tell a held address from a free one")
	}
	e.d.AddressReleased(ctx, netip.MustParseAddr("10.1.0.5"))
	if got := e.storedKeys(bucketEndpoints); !slices.Equal(got, []string{kept}) {
		t.Errorf("stored endpoints %v, want only %s", got, dockerid.Short(kept))
	}
	mustCreateEndpoint(t, e, endpointReq(nw, endpointID(3), "10.1.0.5/24", ""))
}

// TestPoolReleasedForgetsUncreatedNetwork: the IPAM driver's release of a
// pool a stored network still has (Docker rolling back a create whose
// answer it never got) deletes that network and withdraws its subnet.
func TestPoolReleasedForgetsUncreatedNetwork(t *testing.T) {
	e := newTestEnv(t)
	nw, other := networkID(1), networkID(2)
	mustCreateNetwork(t, e, networkReq(nw, []*netapi.IPAMData{ipam("10.1.0.0/24", "")}, "parent", "eth0", "announce", "subnet"))
	mustCreateNetwork(t, e, networkReq(other, []*netapi.IPAMData{ipam("10.2.0.0/24", "")}, "parent", "eth0"))
	if !e.d.UsesPool(netip.MustParsePrefix("10.1.0.0/24")) || e.d.UsesPool(netip.MustParsePrefix("10.3.0.0/24")) {
		t.Fatal("UsesPool does not tell the network's pool from another")
	}
	e.d.PoolReleased(ctx, netip.MustParsePrefix("10.1.0.0/24"))
	if got := e.storedKeys(bucketNetworks); !slices.Equal(got, []string{other}) {
		t.Errorf("stored networks %v, want only %s", got, dockerid.Short(other))
	}
	if got := e.ann.prefixes(nw); len(got) != 0 {
		t.Errorf("the forgotten network still announces %v", got)
	}
	mustCreateNetwork(t, e, networkReq(networkID(3), []*netapi.IPAMData{ipam("10.1.0.0/24", "")}, "parent", "eth0"))
}

// TestDeletesSayWhetherTheyDeleted: the IPAM's releases race Docker's own
// deletes (a ReleasePool can look at the networks while DeleteNetwork is
// still writing); the delete that finds nothing left says so, and the
// release logs no "forgot" for it.
func TestDeletesSayWhetherTheyDeleted(t *testing.T) {
	e := newTestEnv(t)
	nw, ep := networkID(1), endpointID(1)
	mustCreateNetwork(t, e, networkReq(nw, []*netapi.IPAMData{ipam("10.1.0.0/24", "")}, "parent", "eth0"))
	mustCreateEndpoint(t, e, endpointReq(nw, ep, "10.1.0.5/24", ""))
	for i, want := range []bool{true, false} {
		if deleted, err := e.d.deleteEndpoint(ctx, ep); err != nil || deleted != want {
			t.Errorf("deleteEndpoint, time %d: deleted=%v, %v; want %v", i+1, deleted, err, want)
		}
	}
	for i, want := range []bool{true, false} {
		if deleted, err := e.d.deleteNetwork(ctx, nw); err != nil || deleted != want {
			t.Errorf("deleteNetwork, time %d: deleted=%v, %v; want %v", i+1, deleted, err, want)
		}
	}
}

func TestCreateEndpointRejects(t *testing.T) {
	e := newTestEnv(t)
	host, subnet := networkID(1), networkID(2)
	mustCreateNetwork(t, e, networkReq(host, []*netapi.IPAMData{ipam("10.1.0.0/24", "10.1.0.1/24"), ipam("fd00:1::/64", "")}, "parent", "eth0"))
	mustCreateNetwork(t, e, networkReq(subnet, []*netapi.IPAMData{ipam("10.2.0.0/24", "")}, "parent", "eth0", "announce", "subnet"))
	tagged := networkID(3)
	mustCreateNetwork(t, e, networkReq(tagged, []*netapi.IPAMData{ipam("10.3.0.0/24", "")}, "parent", "eth0", "communities", communityList(500)))
	withMAC := endpointReq(host, endpointID(1), "10.1.0.5/24", "")
	withMAC.Interface.MacAddress = "02:42:0a:01:00:05"
	withOpts := func(req *netapi.CreateEndpointRequest, kv ...string) *netapi.CreateEndpointRequest {
		req.Options = map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			req.Options[kv[i]] = kv[i+1]
		}
		return req
	}
	tests := []struct {
		name           string
		req            *netapi.CreateEndpointRequest
		option, reason string
	}{
		{"MAC address", withMAC, "mac-address", "share the parent's MAC"},
		{"MAC address option", withOpts(endpointReq(host, endpointID(1), "10.1.0.5/24", ""), dockerMAC, "02:42:0a:01:00:05"), "mac-address", "MAC"},
		{"address outside the subnets", endpointReq(host, endpointID(1), "10.9.0.5/24", ""), "ip", "outside"},
		{"IPv6 address outside the subnets", endpointReq(host, endpointID(1), "", "fd00:9::5/64"), "ip", "outside"},
		{"IPv6 in the IPv4 field", endpointReq(host, endpointID(1), "fd00:1::5/64", ""), "ip", "IPv4"},
		{"address without prefix length", endpointReq(host, endpointID(1), "10.1.0.5", ""), "ip", "prefix length"},
		{"unknown driver-opt", withOpts(endpointReq(host, endpointID(1), "10.1.0.5/24", ""), "parent", "eth1"), "parent", "unknown"},
		{"bad community", withOpts(endpointReq(host, endpointID(1), "10.1.0.5/24", ""), "communities", "1:2:3"), "communities", "2 numbers"},
		{"communities on a subnet network", withOpts(endpointReq(subnet, endpointID(1), "10.2.0.5/24", ""), "communities", "65000:1"), "communities", "announce=subnet"},
		{"communities past an UPDATE with the network's", withOpts(endpointReq(tagged, endpointID(1), "10.3.0.5/24", ""), "large_communities", largeCommunityList(10)),
			"large_communities", "500 communities and 10 large communities take 2120 bytes of a BGP UPDATE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.d.CreateEndpoint(ctx, tt.req)
			checkOptionError(t, err, tt.option, tt.reason)
			if got := e.storedKeys(bucketEndpoints); len(got) != 0 {
				t.Errorf("stored endpoints %v after a refusal", got)
			}
		})
	}
	for _, req := range []*netapi.CreateEndpointRequest{
		endpointReq(networkID(9), endpointID(1), "10.1.0.5/24", ""), // unknown network
		endpointReq(host, "e1", "10.1.0.5/24", ""),                  // not a Docker ID
	} {
		if _, err := e.d.CreateEndpoint(ctx, req); err == nil {
			t.Errorf("endpoint %s on network %s accepted", req.EndpointID, dockerid.Short(req.NetworkID))
		}
	}
}

func mustCreateNetwork(t testing.TB, e *testEnv, req *netapi.CreateNetworkRequest) {
	t.Helper()
	if err := e.d.CreateNetwork(ctx, req); err != nil {
		t.Fatalf("create network %s: %v", dockerid.Short(req.NetworkID), err)
	}
}

func mustCreateEndpoint(t testing.TB, e *testEnv, req *netapi.CreateEndpointRequest) {
	t.Helper()
	resp, err := e.d.CreateEndpoint(ctx, req)
	if err != nil {
		t.Fatalf("create endpoint %s: %v", dockerid.Short(req.EndpointID), err)
	}
	if i := resp.Interface; i != nil && (i.Address != "" || i.AddressIPv6 != "" || i.MacAddress != "") {
		t.Fatalf("CreateEndpoint answered with interface %+v: Docker would roll back", *i)
	}
}

// TestEndpointsSurviveRestart creates a network and an endpoint, restarts
// the driver on the same state file, and checks everything is still known:
// Docker replays nothing.
func TestEndpointsSurviveRestart(t *testing.T) {
	e := newTestEnv(t)
	nw, ep := networkID(1), endpointID(1)
	mustCreateNetwork(t, e, networkReq(nw, []*netapi.IPAMData{ipam("10.1.0.0/24", "10.1.0.1/24"), ipam("fd00:1::/64", "fd00:1::1/64")},
		"parent", "eth0", "communities", "65000:1"))
	mustCreateEndpoint(t, e, endpointReq(nw, ep, "10.1.0.5/24", "fd00:1::5/64"))
	e.restart()

	info, err := e.d.EndpointInfo(ctx, &netapi.InfoRequest{NetworkID: nw, EndpointID: ep})
	if err != nil {
		t.Fatalf("EndpointInfo after restart: %v", err)
	}
	want := map[string]string{
		"addresses": "10.1.0.5/24,fd00:1::5/64", "interface": childName(ep), "parent": "eth0",
		"joined": "false", "announce": "host", "announced": "nothing",
	}
	for k, v := range want {
		if info.Value[k] != v {
			t.Errorf("EndpointInfo[%s] = %q, want %q", k, info.Value[k], v)
		}
	}
	err = e.d.CreateNetwork(ctx, networkReq(networkID(2), []*netapi.IPAMData{ipam("10.1.0.128/25", "")}, "parent", "eth0"))
	checkOptionError(t, err, "subnet", "overlaps")

	for range 2 { // Docker repeats these on rollback and at start-up
		if err := e.d.Leave(ctx, &netapi.LeaveRequest{NetworkID: nw, EndpointID: ep}); err != nil {
			t.Fatalf("Leave of a never-joined endpoint: %v", err)
		}
		if err := e.d.DeleteEndpoint(ctx, &netapi.DeleteEndpointRequest{NetworkID: nw, EndpointID: ep}); err != nil {
			t.Fatalf("DeleteEndpoint: %v", err)
		}
		if err := e.d.DeleteNetwork(ctx, &netapi.DeleteNetworkRequest{NetworkID: nw}); err != nil {
			t.Fatalf("DeleteNetwork: %v", err)
		}
	}
	e.restart()
	if n, ep := e.storedKeys(bucketNetworks), e.storedKeys(bucketEndpoints); len(n)+len(ep) != 0 {
		t.Errorf("left in the store: networks %v, endpoints %v", n, ep)
	}
	if !e.hasLink("eth0") {
		t.Error("the operator's parent NIC was deleted")
	}
}

type fixedRanges map[netip.Prefix]netip.Prefix

func (f fixedRanges) LocalRange(pool netip.Prefix) (netip.Prefix, bool) {
	r, ok := f[pool]
	return r, ok
}

// TestSubnetAnnouncement: announce=subnet announces this host's block of
// each pool (the whole pool when IPAM has no block there), re-announces it
// after a restart and withdraws it with the network.
func TestSubnetAnnouncement(t *testing.T) {
	e := newTestEnv(t)
	e.ranges = fixedRanges{netip.MustParsePrefix("10.20.0.0/16"): netip.MustParsePrefix("10.20.3.0/24")}
	e.restart()
	nw := networkID(1)
	mustCreateNetwork(t, e, networkReq(nw, []*netapi.IPAMData{ipam("10.20.0.0/16", ""), ipam("fd00:20::/64", "")},
		"parent", "eth0", "announce", "subnet", "communities", "65000:20", "large_communities", "65000:0:20"))
	e.ann.waitFor(t, nw, "10.20.3.0/24", "fd00:20::/64")
	for _, a := range e.ann.adverts(nw) {
		if !slices.Equal(a.Communities, []string{"65000:20"}) || !slices.Equal(a.LargeCommunities, []string{"65000:0:20"}) {
			t.Errorf("%s carries %v %v", a.Prefix, a.Communities, a.LargeCommunities)
		}
	}
	e.restart()
	if got := e.ann.prefixes(nw); len(got) != 2 { // no waiting: Reconcile must have done it
		t.Fatalf("after restart the network announces %v", got)
	}
	if err := e.d.DeleteNetwork(ctx, &netapi.DeleteNetworkRequest{NetworkID: nw}); err != nil {
		t.Fatal(err)
	}
	e.ann.waitFor(t, nw)
}

// markJoined puts the state a Join leaves behind into the store while the
// driver is stopped, with a macvlan on eth0 standing in for the ipvlan link
// Docker has not moved yet: this kernel may lack ipvlan, and the driver
// only looks at a link's name, index and parent.
func (e *testEnv) markJoined(ep string) {
	e.t.Helper()
	e.stop()
	stand := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: childName(ep), ParentIndex: e.link("eth0").Attrs().Index}, Mode: netlink.MACVLAN_MODE_BRIDGE}
	if err := e.h.LinkAdd(stand); err != nil {
		e.t.Fatalf("stand-in link: %v", err)
	}
	e.storeJoined(ep, e.link(childName(ep)).Attrs().Index)
	e.start()
}

// storeJoined marks ep joined in the store, its link at ifindex.
func (e *testEnv) storeJoined(ep string, ifindex int) {
	e.t.Helper()
	db, err := store.Open(e.dbPath)
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *store.Tx) error {
		var rec endpointRecord
		err := tx.ForEach(bucketEndpoints, func(key string, decode func(any) error) error {
			if key != ep {
				return nil
			}
			return decode(&rec)
		})
		if err != nil {
			return err
		}
		rec.Joined, rec.Ifindex = true, ifindex
		return tx.Put(bucketEndpoints, ep, rec)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// twoJoined creates network 1 on eth0 with endpoints 1 (10.1.0.5) and 2
// (10.1.0.6), both joined, their links still in the host.
func (e *testEnv) twoJoined() (nw, a, b string) {
	e.t.Helper()
	nw, a, b = networkID(1), endpointID(1), endpointID(2)
	mustCreateNetwork(e.t, e, networkReq(nw, []*netapi.IPAMData{ipam("10.1.0.0/24", "")}, "parent", "eth0"))
	mustCreateEndpoint(e.t, e, endpointReq(nw, a, "10.1.0.5/24", ""))
	mustCreateEndpoint(e.t, e, endpointReq(nw, b, "10.1.0.6/24", ""))
	e.markJoined(a)
	e.markJoined(b)
	return nw, a, b
}

// TestRebootAnnouncesOnlyLiveLinks: after a reboot (every link gone while
// the plugin was down), a joined endpoint whose link is nowhere is not
// announced; one whose link is in a container is.
func TestRebootAnnouncesOnlyLiveLinks(t *testing.T) {
	e := newTestEnv(t)
	_, gone, live := e.twoJoined()
	e.moveToContainer(childName(gone))
	e.moveToContainer(childName(live))
	e.ann.waitFor(t, gone, "10.1.0.5/32")
	e.ann.waitFor(t, live, "10.1.0.6/32")
	e.stop()
	if err := e.hc.LinkDel(e.containerLink(childName(gone))); err != nil {
		t.Fatal(err)
	}
	e.start()
	if got := e.ann.prefixes(gone); got != nil {
		t.Errorf("an endpoint whose link is gone is announced after the restart: %v", got)
	}
	if got := e.ann.prefixes(live); len(got) != 1 {
		t.Errorf("an endpoint in a container is not announced after the restart: %v", got)
	}
}

// TestRestartFindsEveryContainer: a restart with more containers than the
// kernel's dump of namespace IDs lists (134 on Linux 6.18) announces every
// one of them again.
func TestRestartFindsEveryContainer(t *testing.T) {
	e, announced := withContainers(t, 150)
	e.start()
	announced()
}

// withContainers makes n joined endpoints whose links Docker moved into a
// container each (a namespace of its own) while the driver ran, and stops
// the driver. announced waits until every one is announced.
func withContainers(t testing.TB, n int) (e *testEnv, announced func()) {
	e = newTestEnv(t)
	nw := networkID(1)
	mustCreateNetwork(t, e, networkReq(nw, []*netapi.IPAMData{ipam("10.1.0.0/16", "")}, "parent", "eth0"))
	addr := func(i int) string { return netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}).String() }
	for i := range n {
		mustCreateEndpoint(t, e, endpointReq(nw, endpointID(i+1), addr(i+1)+"/16", ""))
	}
	e.stop()
	for i := range n {
		ep := endpointID(i + 1)
		stand := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: childName(ep), ParentIndex: e.link("eth0").Attrs().Index}, Mode: netlink.MACVLAN_MODE_BRIDGE}
		if err := e.h.LinkAdd(stand); err != nil {
			t.Fatalf("stand-in link: %v", err)
		}
		e.storeJoined(ep, e.link(childName(ep)).Attrs().Index)
	}
	e.start()
	for i := range n {
		if err := e.h.LinkSetNsFd(e.link(childName(endpointID(i+1))), int(bareNetns(t))); err != nil {
			t.Fatal(err)
		}
	}
	e.stop()
	return e, func() {
		for i := range n {
			e.ann.waitFor(t, endpointID(i+1), addr(i+1)+"/32")
		}
	}
}

// bareNetns makes a namespace held only by the returned handle, closed
// when the test ends: no name and no mount, cheap enough for hundreds of
// containers.
func bareNetns(t testing.TB) netns.NsHandle {
	t.Helper()
	made := make(chan netns.NsHandle, 1)
	fail := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			fail <- err
			return
		}
		defer home.Close()
		ns, err := netns.New() // enters it
		if err != nil {
			runtime.UnlockOSThread()
			fail <- err
			return
		}
		if netns.Set(home) == nil {
			runtime.UnlockOSThread() // else the thread ends with the goroutine
		}
		made <- ns
	}()
	select {
	case ns := <-made:
		t.Cleanup(func() { ns.Close() })
		return ns
	case err := <-fail:
		t.Fatalf("new network namespace: %v", err)
		return 0
	}
}

// TestAnnouncedOnceInContainer: a joined endpoint is announced only once
// its link has left the host namespace, with the network's and the
// container's communities, and a Leave before that keeps it unannounced.
func TestAnnouncedOnceInContainer(t *testing.T) {
	e := newTestEnv(t)
	nw, ep, early := networkID(1), endpointID(1), endpointID(2)
	mustCreateNetwork(t, e, networkReq(nw, []*netapi.IPAMData{ipam("10.1.0.0/24", ""), ipam("fd00:1::/64", "")}, "parent", "eth0", "communities", "65000:1"))
	req := endpointReq(nw, ep, "10.1.0.5/24", "fd00:1::5/64")
	req.Options = map[string]any{"communities": "65000:2", "com.docker.network.portmap": []any{}}
	mustCreateEndpoint(t, e, req)
	mustCreateEndpoint(t, e, endpointReq(nw, early, "10.1.0.6/24", ""))
	e.markJoined(ep)
	e.markJoined(early)

	// Reconcile (run by markJoined's start) looks once before it leaves
	// the watch to poll: that look saw the link in the host.
	if got := e.ann.prefixes(ep); got != nil {
		t.Fatalf("announced %v while the link is still in the host", got)
	}
	e.moveToContainer(childName(ep))
	e.ann.waitFor(t, ep, "10.1.0.5/32", "fd00:1::5/128")
	for _, a := range e.ann.adverts(ep) {
		if !slices.Equal(a.Communities, []string{"65000:1", "65000:2"}) {
			t.Errorf("%s carries communities %v, want the network's and the container's", a.Prefix, a.Communities)
		}
	}
	info, err := e.d.EndpointInfo(ctx, &netapi.InfoRequest{NetworkID: nw, EndpointID: ep})
	if err != nil || !strings.Contains(info.Value["announced"], "10.1.0.5/32 [65000:1 65000:2]") {
		t.Errorf("EndpointInfo announced = %q (%v)", info.Value["announced"], err)
	}

	if err := e.d.Leave(ctx, &netapi.LeaveRequest{NetworkID: nw, EndpointID: early}); err != nil {
		t.Fatal(err)
	}
	if e.hasLink(childName(early)) {
		t.Error("Leave left the link in the host namespace")
	}
	// The watch of early ends at its next look, the link being gone; ep's
	// ended once it was announced.
	e.d.watchers.Wait()
	if got := e.ann.prefixes(early); got != nil {
		t.Errorf("an endpoint that left before its link moved is announced: %v", got)
	}

	e.restartAndLeave(nw, ep, 2)
}

// restartAndLeave restarts the driver, checks that Reconcile itself (no
// waiting: the speaker's sessions open right after it) announced the
// endpoint's want prefixes, and makes it leave.
func (e *testEnv) restartAndLeave(nw, ep string, want int) {
	e.t.Helper()
	e.restart()
	if got := e.ann.prefixes(ep); len(got) != want {
		e.t.Fatalf("after restart announced %v, want %d prefixes", got, want)
	}
	if err := e.d.Leave(ctx, &netapi.LeaveRequest{NetworkID: nw, EndpointID: ep}); err != nil {
		e.t.Fatalf("Leave after restart: %v", err)
	}
	e.ann.waitFor(e.t, ep)
}

// TestJoinFailsWithoutParent: a Join that cannot make the link leaves no
// link and an unjoined record.
func TestJoinFailsWithoutParent(t *testing.T) {
	e := newTestEnv(t)
	mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "mv0", ParentIndex: e.link("eth0").Attrs().Index, Flags: net.FlagUp}, Mode: netlink.MACVLAN_MODE_BRIDGE}
	if err := e.h.LinkAdd(mv); err != nil {
		t.Fatal(err)
	}
	nw, ep := networkID(1), endpointID(1)
	mustCreateNetwork(t, e, networkReq(nw, []*netapi.IPAMData{ipam("10.1.0.0/24", "")}, "parent", "mv0"))
	mustCreateEndpoint(t, e, endpointReq(nw, ep, "10.1.0.5/24", ""))
	if err := e.h.LinkDel(mv); err != nil {
		t.Fatal(err)
	}
	links := e.linkNames()
	if _, err := e.d.Join(ctx, &netapi.JoinRequest{NetworkID: nw, EndpointID: ep}); err == nil || !strings.Contains(err.Error(), "mv0") {
		t.Fatalf("Join without its parent: %v", err)
	}
	if got := e.linkNames(); !slices.Equal(got, links) {
		t.Errorf("links changed from %v to %v", links, got)
	}
	if rec, _ := e.d.state.endpoint(ep); rec.Joined {
		t.Error("the endpoint is marked joined")
	}
	if _, err := e.d.Join(ctx, &netapi.JoinRequest{NetworkID: nw, EndpointID: endpointID(7)}); err == nil {
		t.Error("Join of an unknown endpoint succeeded")
	}
}

// TestNewRefusesCorruptState: a record filed under another ID stops the
// start rather than let Reconcile delete the links of what it skipped.
func TestNewRefusesCorruptState(t *testing.T) {
	e := newTestEnv(t)
	e.stop()
	db, err := store.Open(e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *store.Tx) error {
		return tx.Put(bucketEndpoints, endpointID(1), endpointRecord{ID: endpointID(2)})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{Store: db, Announcer: newRecorder(), Netlink: e.h})
	if !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("New on a corrupt record: %v, want ErrCorrupt", err)
	}
}

func TestExternalConnectivityIsANoOp(t *testing.T) {
	e := newTestEnv(t)
	links := e.linkNames()
	if err := e.d.ProgramExternalConnectivity(ctx, &netapi.ProgramExternalConnectivityRequest{NetworkID: networkID(1), EndpointID: endpointID(1)}); err != nil {
		t.Fatal(err)
	}
	if err := e.d.RevokeExternalConnectivity(ctx, &netapi.RevokeExternalConnectivityRequest{NetworkID: networkID(1), EndpointID: endpointID(1)}); err != nil {
		t.Fatal(err)
	}
	if got := e.linkNames(); !slices.Equal(got, links) {
		t.Errorf("links changed from %v to %v", links, got)
	}
}

// TestJoinOptions: communities given at Join (--driver-opt reaching Join)
// take over from CreateEndpoint's; Docker's own sandbox keys are ignored
// and bad values refused.
func TestJoinOptions(t *testing.T) {
	e := newTestEnv(t)
	nw, ep := networkID(1), endpointID(1)
	mustCreateNetwork(t, e, networkReq(nw, []*netapi.IPAMData{ipam("10.1.0.0/24", "")}, "parent", "eth0"))
	req := endpointReq(nw, ep, "10.1.0.5/24", "")
	req.Options = map[string]any{"communities": "65000:1"}
	mustCreateEndpoint(t, e, req)
	join := func(opts map[string]any) (endpointRecord, error) {
		rec, _, err := e.d.joinTarget(&netapi.JoinRequest{NetworkID: nw, EndpointID: ep, Options: opts})
		return rec, err
	}
	rec, err := join(map[string]any{"com.docker.network.portmap": []any{}, "com.docker.network.endpoint.exposedports": []any{}})
	if err != nil || !slices.Equal(rec.Config.Communities, []string{"65000:1"}) {
		t.Errorf("without join options: communities %v, %v", rec.Config.Communities, err)
	}
	rec, err = join(map[string]any{"communities": "65000:9", "large_communities": "1:2:3"})
	if err != nil || !slices.Equal(rec.Config.Communities, []string{"65000:9"}) || !slices.Equal(rec.Config.LargeCommunities, []string{"1:2:3"}) {
		t.Errorf("with join options: %+v, %v", rec.Config, err)
	}
	_, err = join(map[string]any{"communities": "65000"})
	checkOptionError(t, err, "communities", "numbers")
}

// TestJoinResponse: what Join tells Docker for each kind of network and
// container. L3 gives connected default routes, one per family the
// container has (Docker 28 takes them as gateway candidates and installs
// the one --gw-priority picks), never a gateway address; L2 gives the
// network's gateways; a name the user chose goes to DstName.
func TestJoinResponse(t *testing.T) {
	v4 := netip.MustParsePrefix("10.1.0.5/24")
	v6 := netip.MustParsePrefix("fd00:1::5/64")
	pools := []pool{{Prefix: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")},
		{Prefix: netip.MustParsePrefix("fd00:1::/64"), Gateway: netip.MustParseAddr("fd00:1::1")}}
	v4Route := &netapi.StaticRoute{Destination: "0.0.0.0/0", RouteType: routeConnected}
	v6Route := &netapi.StaticRoute{Destination: "::/0", RouteType: routeConnected}
	ep := func(ifname string, addrs ...netip.Prefix) endpointRecord {
		return endpointRecord{ID: endpointID(1), Addresses: addrs, Config: endpointConfig{IfName: ifname}}
	}
	net := func(mode ipvlanMode) networkRecord {
		return networkRecord{Config: networkConfig{Mode: mode}, Pools: pools}
	}
	tests := []struct {
		name    string
		ep      endpointRecord
		network networkRecord
		routes  []*netapi.StaticRoute
		gw, gw6 string
		dstName string
	}{
		{"l3 dual stack", ep("", v4, v6), net(modeL3), []*netapi.StaticRoute{v4Route, v6Route}, "", "", ""},
		{"l3 IPv6 only", ep("", v6), net(modeL3), []*netapi.StaticRoute{v6Route}, "", "", ""},
		{"l3s IPv4 only", ep("", v4), net(modeL3S), []*netapi.StaticRoute{v4Route}, "", "", ""},
		{"l2", ep("", v4, v6), net(modeL2), nil, "10.1.0.1", "fd00:1::1", ""},
		{"l2 without an IPv6 gateway", ep("", v6), networkRecord{Config: networkConfig{Mode: modeL2}, Pools: []pool{{Prefix: netip.MustParsePrefix("fd00:1::/64")}}},
			[]*netapi.StaticRoute{v6Route}, "", "", ""},
		{"a chosen name", ep("data0", v4), net(modeL3), []*netapi.StaticRoute{v4Route}, "", "", "data0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := joinResponse(tc.ep, tc.network)
			want := &api.JoinResponse{
				InterfaceName: api.InterfaceName{SrcName: childName(tc.ep.ID), DstName: tc.dstName, DstPrefix: "eth"},
				Gateway:       tc.gw, GatewayIPv6: tc.gw6, StaticRoutes: tc.routes, DisableGatewayService: true,
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestGwAllocCheck: Docker 28 asks before allocating gateways: L3 and L3S
// networks need none, L2 keeps its own; bad options fail here.
func TestGwAllocCheck(t *testing.T) {
	d := &Driver{}
	for _, tc := range []struct {
		opts map[string]any
		skip bool
	}{
		{generic("parent", "eth0"), true},
		{generic("parent", "eth0", "ipvlan_mode", "l3s"), true},
		{generic(), true}, // internal: a dummy parent
		{generic("parent", "eth0", "ipvlan_mode", "l2"), false},
	} {
		got, err := d.GwAllocCheck(ctx, &api.GwAllocCheckRequest{Options: tc.opts})
		if err != nil || got.SkipIPv4 != tc.skip || got.SkipIPv6 != tc.skip {
			t.Errorf("options %v: %+v, %v; want skip %v", tc.opts, got, err, tc.skip)
		}
	}
	_, err := d.GwAllocCheck(ctx, &api.GwAllocCheckRequest{Options: generic("parent", "eth0", "ipvlan_mode", "l4")})
	checkOptionError(t, err, "ipvlan_mode", "want one of")
}

// TestAnnouncedWhenMovedLate: on a loaded host Docker moved a swarm task's
// link into its container more than 30 s after Join (the lab's swarm
// scenario), when the watch had already ended: the task ran unannounced.
// The watch goes on past moveWait, slower, and announces the link once it
// moves; a Leave ends it.
func TestAnnouncedWhenMovedLate(t *testing.T) {
	saved := moveWait
	moveWait = 50 * time.Millisecond
	t.Cleanup(func() { moveWait = saved })
	e := newTestEnv(t)
	nw, ep, late := e.twoJoined()
	// Past moveWait, with both links still in the host.
	time.Sleep(4 * moveWait)
	if got := e.ann.prefixes(ep); got != nil {
		t.Fatalf("announced %v while the link is still in the host", got)
	}
	e.moveToContainer(childName(ep))
	e.ann.waitFor(t, ep, "10.1.0.5/32")
	if err := e.d.Leave(ctx, &netapi.LeaveRequest{NetworkID: nw, EndpointID: late}); err != nil {
		t.Fatal(err)
	}
	// late's watch ends at its next look; ep's ended once it was announced.
	e.d.watchers.Wait()
	if got := e.ann.prefixes(late); got != nil {
		t.Errorf("an endpoint that left before its link moved is announced: %v", got)
	}
}
