package driver

import (
	"net"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/dockerid"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/rtnl"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

// joinedInto stands in for Join and Docker's move on a kernel without
// ipvlan: it creates a macvlan child of eth0 under the endpoint's link name,
// records it on the endpoint as Join does, and moves it into ctr the way
// Docker does (by namespace file descriptor, from the host).
func (e *testEnv) joinedInto(ctr netns.NsHandle, endpoint string) netlink.Link {
	e.t.Helper()
	child := &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{Name: childName(endpoint), ParentIndex: e.link("eth0").Attrs().Index},
		Mode:      netlink.MACVLAN_MODE_BRIDGE,
	}
	if err := e.h.LinkAdd(child); err != nil {
		e.t.Fatalf("create child link: %v", err)
	}
	ep, _ := e.d.state.endpoint(endpoint)
	ep.Joined, ep.Ifindex, ep.Sandbox = true, child.Attrs().Index, "sandbox1"
	e.d.state.putEndpoint(ep)
	if err := e.h.LinkSetNsFd(child, int(ctr)); err != nil {
		e.t.Fatalf("move child link into the container: %v", err)
	}
	return child
}

func TestTrafficCountsContainerLinks(t *testing.T) {
	e := newTestEnv(t)
	ctr := testnet.NewNS(t, "ctr")
	ctrNs, err := netns.GetFromName(ctr.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer ctrNs.Close()
	// A namespace with an ID but none of our links: the search must pass it by.
	decoy, err := netns.GetFromName(testnet.NewNS(t, "decoy").Name)
	if err != nil {
		t.Fatal(err)
	}
	defer decoy.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "decoy0"}, PeerName: "decoy1", PeerNamespace: netlink.NsFd(decoy)}
	if err := e.h.LinkAdd(veth); err != nil {
		t.Fatalf("create decoy veth: %v", err)
	}

	network, endpoint := networkID(1), endpointID(1)
	mustCreateNetwork(t, e, networkReq(network, dualStack("10.1.0", "fd00:1"), "parent", "eth0"))
	mustCreateEndpoint(t, e, endpointReq(network, endpoint, "10.1.0.5/24", ""))
	child := e.joinedInto(ctrNs, endpoint)

	peer := e.link("peer0")
	if err := e.h.AddrAdd(peer, mustAddr(t, "10.1.0.1/24")); err != nil {
		t.Fatal(err)
	}
	if err := e.h.LinkSetUp(peer); err != nil {
		t.Fatal(err)
	}
	ctr.Exec(t, "ip", "addr", "add", "10.1.0.5/24", "dev", child.Attrs().Name)
	ctr.Exec(t, "ip", "link", "set", child.Attrs().Name, "up")
	ctr.Exec(t, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.1.0.1")

	before := e.trafficOf(endpoint)
	inside := containerCounters(t, ctrNs, child.Attrs().Name)
	after := e.trafficOf(endpoint)
	if before.Network != network || before.Sandbox != "sandbox1" {
		t.Errorf("counters labelled network %s sandbox %q, want %s and sandbox1", dockerid.Short(before.Network), before.Sandbox, dockerid.Short(network))
	}
	if before.TxPackets < 3 || before.RxPackets < 3 {
		t.Errorf("counters %+v after three pings, want at least 3 packets each way", before)
	}
	for _, c := range []struct {
		name        string
		lo, mid, hi uint64
	}{
		{"rx bytes", before.RxBytes, inside.RxBytes, after.RxBytes},
		{"tx bytes", before.TxBytes, inside.TxBytes, after.TxBytes},
		{"rx packets", before.RxPackets, inside.RxPackets, after.RxPackets},
		{"tx packets", before.TxPackets, inside.TxPackets, after.TxPackets},
	} {
		if c.lo > c.mid || c.mid > c.hi {
			t.Errorf("%s: read from the host %d then %d, but the container saw %d in between", c.name, c.lo, c.hi, c.mid)
		}
	}
}

func (e *testEnv) trafficOf(endpoint string) EndpointTraffic {
	e.t.Helper()
	all, err := e.d.Traffic(ctx)
	if err != nil {
		e.t.Fatalf("Traffic: %v", err)
	}
	for _, tr := range all {
		if tr.Endpoint == endpoint {
			return tr
		}
	}
	e.t.Fatalf("Traffic %+v has no counters for endpoint %s", all, dockerid.Short(endpoint))
	return EndpointTraffic{}
}

func containerCounters(t *testing.T, ns netns.NsHandle, name string) *netlink.LinkStatistics {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s in the container: %v", name, err)
	}
	return link.Attrs().Statistics
}

func mustAddr(t *testing.T, cidr string) *netlink.Addr {
	t.Helper()
	ip, ipnet, err := net.ParseCIDR(cidr)
	if err != nil {
		t.Fatal(err)
	}
	ipnet.IP = ip
	return &netlink.Addr{IPNet: ipnet}
}

// nsidMessage is an RTM_NEWNSID payload carrying id.
func nsidMessage(id int32) []byte {
	msg := []byte{unix.AF_UNSPEC, 0, 0, 0}
	return rtnl.AppendUint32Attr(msg, unix.NETNSA_NSID, uint32(id))
}

func TestParseNetnsIDs(t *testing.T) {
	ids, err := parseNetnsIDs([][]byte{nsidMessage(0), nsidMessage(7), nsidMessage(-1), {1}})
	if err != nil || !slices.Equal(ids, []int32{0, 7}) {
		t.Fatalf("parseNetnsIDs = %v, %v; want [0 7] (not-assigned and short messages skipped)", ids, err)
	}
	// An unpadded last attribute (the netlink library's ParseRouteAttr panics on it) is
	// fine; one longer than its message is not.
	if ids, err := parseNetnsIDs([][]byte{[]byte("0000\x05\x00000")}); err != nil || len(ids) != 0 {
		t.Errorf("unpadded last attribute: %v, %v; want no IDs and no error", ids, err)
	}
	if _, err := parseNetnsIDs([][]byte{{0, 0, 0, 0, 12, 0, unix.NETNSA_NSID, 0, 1, 0, 0, 0}}); err == nil {
		t.Error("an attribute longer than its message parsed without error")
	}
}

// FuzzParseNetnsIDs: whatever the kernel (or a bug) sends, parsing returns
// IDs or an error and never panics.
func FuzzParseNetnsIDs(f *testing.F) {
	f.Add(nsidMessage(3))
	f.Add([]byte{0, 0, 0, 0, 8, 0})
	// An unpadded last attribute: the netlink library's ParseRouteAttr
	// panics on it.
	f.Add([]byte("0000\x05\x00000"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		ids, err := parseNetnsIDs([][]byte{msg})
		for _, id := range ids {
			if id < 0 {
				t.Fatalf("negative ID %d parsed from %x (err %v)", id, msg, err)
			}
		}
	})
}
