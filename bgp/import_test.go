package bgp

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	bgppkt "github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/ipvlan-bgp/ipvlan-bgp/fib"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

const hostAS = 65000

// importFabric is the test namespace as a host running an embedded GoBGP
// speaker, wired by veth to leaf namespaces: leaf i is 192.0.2.(4i+2),
// the host 192.0.2.(4i+1) on link "leafi".
type importFabric struct {
	t     testing.TB
	s     *server.BgpServer
	table *fib.Table
	frr   []*testnet.FRR
}

func newImportFabric(t testing.TB) *importFabric {
	t.Helper()
	testnet.RequireRoot(t)
	s := server.NewBgpServer(server.LoggerOption(quietGoBGPLogger()))
	go s.Serve()
	ctx := context.Background()
	err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: hostAS, RouterId: "192.0.2.1", ListenPort: 179, UseMultiplePaths: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	table, err := fib.New(fib.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = table.Flush(ctx); table.Close() })
	return &importFabric{t: t, s: s, table: table}
}

func quietGoBGPLogger() gobgplog.Logger {
	l := gobgplog.NewDefaultLogger()
	l.SetLevel(gobgplog.ErrorLevel)
	return l
}

// link wires leaf number i to the host and returns (host address, leaf
// address, leaf namespace).
func (f *importFabric) link(i int) (string, string, *testnet.NS) {
	ns := testnet.NewNS(f.t, fmt.Sprintf("leaf%d", i))
	testnet.Veth(f.t, testnet.Host, fmt.Sprintf("leaf%d", i), ns, "uplink")
	host, leaf := fmt.Sprintf("192.0.2.%d", 4*i+1), fmt.Sprintf("192.0.2.%d", 4*i+2)
	testnet.Host.AddAddr(f.t, fmt.Sprintf("leaf%d", i), host+"/30")
	ns.AddAddr(f.t, "uplink", leaf+"/30")
	return host, leaf, ns
}

func (f *importFabric) addPeer(addr string, as uint32) {
	f.t.Helper()
	err := f.s.AddPeer(context.Background(), &api.AddPeerRequest{Peer: &api.Peer{
		Conf:   &api.PeerConf{NeighborAddress: addr, PeerAsn: as},
		Timers: &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1, HoldTime: 9, KeepaliveInterval: 3}},
	}})
	if err != nil {
		f.t.Fatal(err)
	}
}

// addFRRLeaf starts FRR leaf i (AS 65100+i) announcing prefixes to the host.
func (f *importFabric) addFRRLeaf(i int, prefixes ...string) *testnet.FRR {
	var networks []string
	for _, p := range prefixes {
		networks = append(networks, "network "+p)
	}
	return f.addFRRLeafConfig(i, "", networks...)
}

// addFRRLeafConfig starts FRR leaf i (AS 65100+i) peering with the host:
// preamble goes before its router bgp section (route maps, prefix lists),
// each of unicast lines into its IPv4 unicast family ("HOST" in a line
// stands for the host's address).
func (f *importFabric) addFRRLeafConfig(i int, preamble string, unicast ...string) *testnet.FRR {
	host, leaf, ns := f.link(i)
	var family strings.Builder
	for _, line := range unicast {
		family.WriteString("  " + strings.ReplaceAll(line, "HOST", host) + "\n")
	}
	frr := testnet.StartFRR(f.t, ns, fmt.Sprintf(`%s
router bgp %d
 bgp router-id %s
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor %s remote-as %d
 neighbor %s timers 3 9
 neighbor %s timers connect 1
 address-family ipv4 unicast
%s exit-address-family
`, preamble, 65100+i, leaf, host, hostAS, host, host, family.String()))
	f.addPeer(leaf, uint32(65100+i))
	f.frr = append(f.frr, frr)
	return frr
}

// announce changes what FRR leaf announces: "network P" or "no network P".
func announce(t *testing.T, frr *testnet.FRR, as int, lines ...string) {
	t.Helper()
	cmds := []string{"configure terminal", fmt.Sprintf("router bgp %d", as), "address-family ipv4 unicast"}
	frr.Vtysh(t, append(cmds, lines...)...)
}

// startImporter runs an importer until the test ends or stop is called.
func (f *importFabric) startImporter(policy ImportPolicy, owned func(netip.Prefix) bool, log *logrus.Entry) (im *importer, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	connected, err := fib.NewConnected(log)
	if err != nil {
		f.t.Fatal(err)
	}
	im = newImporter(f.table, policy, owned, connected, log)
	go func() { done <- im.run(ctx, f.s) }()
	go func() { connected.Run(ctx, im.ownedChanged); done <- nil }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		if err := <-done; err != nil {
			f.t.Errorf("importer: %v", err)
		}
	}
	f.t.Cleanup(stop)
	return im, stop
}

// waitKernel waits until our protocol's routes in the kernel are exactly want.
func (f *importFabric) waitKernel(what string, want map[string][]string) {
	f.t.Helper()
	testnet.WaitFor(f.t, 30*time.Second, what, func() (bool, string) {
		got := testnet.Host.KernelRoutes(f.t, int(fib.Protocol))
		return maps.EqualFunc(got, want, func(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }),
			fmt.Sprintf("kernel has %v, want %v", got, want)
	})
}

func ownsNothing(netip.Prefix) bool { return false }

func testLog() *logrus.Entry {
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	return logrus.NewEntry(l)
}

func TestImportECMPFromTwoFRRLeaves(t *testing.T) {
	f := newImportFabric(t)
	leaf1 := f.addFRRLeaf(1, "198.51.100.0/24", "198.51.101.0/24")
	f.addFRRLeaf(2, "198.51.100.0/24")
	f.startImporter(ImportPolicy{}, ownsNothing, testLog())
	via1, via2 := "via 192.0.2.6 dev leaf1", "via 192.0.2.10 dev leaf2"
	f.waitKernel("one ECMP route over both leaves", map[string][]string{
		"198.51.100.0/24": {via2, via1},
		"198.51.101.0/24": {via1},
	})

	announce(t, leaf1, 65101, "network 198.51.102.0/24")
	f.waitKernel("a route announced later", map[string][]string{
		"198.51.100.0/24": {via2, via1},
		"198.51.101.0/24": {via1},
		"198.51.102.0/24": {via1},
	})

	leaf1.Vtysh(t, "configure terminal", "router bgp 65101", "neighbor 192.0.2.5 shutdown")
	f.waitKernel("leaf1's session down: its next hops go", map[string][]string{
		"198.51.100.0/24": {via2},
	})

	announce(t, f.frr[1], 65102, "no network 198.51.100.0/24")
	f.waitKernel("the withdrawn route gone", map[string][]string{})
}

// TestImportNeverInstallsLocalPaths: our own adverts stay out of the kernel,
// even for a prefix a leaf announces too (ours is the best path then).
func TestImportNeverInstallsLocalPaths(t *testing.T) {
	f := newImportFabric(t)
	f.addFRRLeaf(1, "198.51.100.0/24", "198.51.101.0/24")
	for _, p := range []string{"198.51.100.0/24", "198.51.103.0/24"} {
		f.addLocalPath(p)
	}
	f.startImporter(ImportPolicy{}, ownsNothing, testLog())
	f.waitKernel("only the leaf's route not also originated here", map[string][]string{
		"198.51.101.0/24": {"via 192.0.2.6 dev leaf1"},
	})
}

func (f *importFabric) addLocalPath(prefix string) {
	f.t.Helper()
	p := netip.MustParsePrefix(prefix)
	path, err := apiutil.NewPath(bgppkt.NewIPAddrPrefix(uint8(p.Bits()), p.Addr().String()), false,
		[]bgppkt.PathAttributeInterface{bgppkt.NewPathAttributeOrigin(0), bgppkt.NewPathAttributeNextHop("192.0.2.5")}, time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.s.AddPath(context.Background(), &api.AddPathRequest{Path: path}); err != nil {
		f.t.Fatal(err)
	}
}

// TestImportPolicy: default routes and their halves, routes inside the
// host's own connected subnets (here the link to the leaf, 192.0.2.4/30),
// owned prefixes and those outside the allow list stay out of the kernel,
// each refusal logged once with its reason.
func TestImportPolicy(t *testing.T) {
	f := newImportFabric(t)
	f.addFRRLeaf(1, "198.51.100.0/24", "100.64.0.0/24", "0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1", "192.0.2.4/31",
		"203.0.113.0/24", "203.0.113.64/26")
	owned := func(p netip.Prefix) bool { return p == netip.MustParsePrefix("203.0.113.0/24") }
	via := []string{"via 192.0.2.6 dev leaf1"}
	const defaults, connected = "default route or one of its halves", "inside 192.0.2.4/30, a subnet of the host's own interfaces"
	tests := []struct {
		name    string
		policy  ImportPolicy
		want    []string
		refused map[string]string // prefix → words of the logged reason
	}{
		{"default refused", ImportPolicy{}, []string{"198.51.100.0/24", "100.64.0.0/24"},
			map[string]string{"0.0.0.0/0": defaults, "0.0.0.0/1": defaults, "128.0.0.0/1": defaults, "192.0.2.4/31": connected,
				"203.0.113.0/24": "owns", "203.0.113.64/26": "inside 203.0.113.0/24"}},
		{"default allowed", ImportPolicy{AllowDefault: true}, []string{"198.51.100.0/24", "100.64.0.0/24", "default", "0.0.0.0/1", "128.0.0.0/1"},
			map[string]string{"192.0.2.4/31": connected, "203.0.113.0/24": "owns", "203.0.113.64/26": "owns"}},
		{"connected allowed", ImportPolicy{AllowConnected: true}, []string{"198.51.100.0/24", "100.64.0.0/24", "192.0.2.4/31"},
			map[string]string{"0.0.0.0/0": defaults, "0.0.0.0/1": defaults, "128.0.0.0/1": defaults, "203.0.113.0/24": "owns", "203.0.113.64/26": "owns"}},
		{"allow list", ImportPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/22")}}, []string{"198.51.100.0/24"},
			map[string]string{"100.64.0.0/24": "allow list", "0.0.0.0/0": "default", "0.0.0.0/1": "default", "128.0.0.0/1": "default",
				"192.0.2.4/31": "a subnet of the host's own", "203.0.113.0/24": "allow list", "203.0.113.64/26": "allow list"}},
		{"allow everything, owned still refused", ImportPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, AllowDefault: true, AllowConnected: true},
			[]string{"198.51.100.0/24", "100.64.0.0/24", "default", "0.0.0.0/1", "128.0.0.0/1", "192.0.2.4/31"},
			map[string]string{"203.0.113.0/24": "owns", "203.0.113.64/26": "owns"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log, hook := logtest.NewNullLogger()
			_, stop := f.startImporter(tc.policy, owned, logrus.NewEntry(log))
			want := make(map[string][]string)
			for _, p := range tc.want {
				want[p] = via
			}
			f.waitKernel("the allowed routes", want)
			stop()
			checkRefusals(t, hook, tc.refused)
			if err := f.table.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// checkRefusals wants one "not installed" warning per refused prefix, with
// the prefix, the peer and a reason.
func checkRefusals(t *testing.T, hook *logtest.Hook, want map[string]string) {
	t.Helper()
	seen := make(map[string]int)
	for _, e := range hook.AllEntries() {
		if e.Message != "learned route not installed" {
			continue
		}
		prefix := fmt.Sprint(e.Data["prefix"])
		seen[prefix]++
		if words, ok := want[prefix]; !ok || !strings.Contains(fmt.Sprint(e.Data["reason"]), words) || fmt.Sprint(e.Data["peer"]) != "192.0.2.6" {
			t.Errorf("refusal logged for %s, reason %q, peer %v; want reason with %q", prefix, e.Data["reason"], e.Data["peer"], words)
		}
	}
	for prefix := range want {
		if seen[prefix] != 1 {
			t.Errorf("refusal of %s logged %d times, want once", prefix, seen[prefix])
		}
	}
}

// TestImportConnectedChange: a learned route leaves the kernel when an
// address of the host makes its prefix a connected subnet, and comes back
// when the address goes.
func TestImportConnectedChange(t *testing.T) {
	f := newImportFabric(t)
	f.addFRRLeaf(1, "198.51.100.0/24", "198.51.101.0/25")
	f.startImporter(ImportPolicy{}, ownsNothing, testLog())
	via := []string{"via 192.0.2.6 dev leaf1"}
	both := map[string][]string{"198.51.100.0/24": via, "198.51.101.0/25": via}
	f.waitKernel("both learned routes", both)
	testnet.Host.Exec(t, "ip", "addr", "add", "198.51.101.1/24", "dev", "leaf1")
	f.waitKernel("198.51.101.0/25 out, now inside a connected subnet", map[string][]string{"198.51.100.0/24": via})
	testnet.Host.Exec(t, "ip", "addr", "del", "198.51.101.1/24", "dev", "leaf1")
	f.waitKernel("198.51.101.0/25 back", both)
}

// TestImportOwnedChange: when a prefix becomes ours, the learned route to
// it leaves the kernel without waiting for the next event for it, and
// comes back when it is ours no more.
func TestImportOwnedChange(t *testing.T) {
	f := newImportFabric(t)
	f.addFRRLeaf(1, "198.51.100.0/24", "198.51.101.0/24", "198.51.102.0/24")
	var (
		mu    sync.Mutex
		owned = make(map[netip.Prefix]bool)
	)
	im, _ := f.startImporter(ImportPolicy{}, func(p netip.Prefix) bool {
		mu.Lock()
		defer mu.Unlock()
		return owned[p]
	}, testLog())
	setOwned := func(prefix string, own bool) {
		mu.Lock()
		owned[pfx(prefix)] = own
		mu.Unlock()
		im.ownedChanged([]netip.Prefix{pfx(prefix)})
	}
	via := []string{"via 192.0.2.6 dev leaf1"}
	all := map[string][]string{"198.51.100.0/24": via, "198.51.101.0/24": via, "198.51.102.0/24": via}
	f.waitKernel("every learned route", all)

	setOwned("198.51.100.0/24", true)
	setOwned("198.51.102.0/23", true) // covers 198.51.102.0/24
	f.waitKernel("the routes to prefixes now ours gone", map[string][]string{"198.51.101.0/24": via})

	setOwned("198.51.100.0/24", false)
	setOwned("198.51.102.0/23", false)
	f.waitKernel("the routes back once the prefixes are ours no more", all)
}

// TestImportReportsKernelRefusal: a leaf announces one route whose next hop
// the kernel cannot reach, among good ones in the same burst; the good ones
// go in and the refusal is logged under the refused prefix, with the
// kernel's reason.
func TestImportReportsKernelRefusal(t *testing.T) {
	f := newImportFabric(t)
	f.addFRRLeafConfig(1, `ip prefix-list far seq 5 permit 198.51.101.0/24
route-map out permit 10
 match ip address prefix-list far
 set ip next-hop 172.31.0.9
route-map out permit 20`,
		"network 198.51.100.0/24", "network 198.51.101.0/24", "network 198.51.102.0/24", "neighbor HOST route-map out out")
	log, hook := logtest.NewNullLogger()
	f.startImporter(ImportPolicy{}, ownsNothing, logrus.NewEntry(log))
	via := []string{"via 192.0.2.6 dev leaf1"}
	f.waitKernel("the reachable routes", map[string][]string{"198.51.100.0/24": via, "198.51.102.0/24": via})
	testnet.WaitFor(t, 10*time.Second, "the refusal logged", func() (bool, string) {
		var seen []string
		for _, e := range hook.AllEntries() {
			if e.Message == "install learned route (retried by the periodic sync)" {
				err, _ := e.Data[logrus.ErrorKey].(error)
				if fmt.Sprint(e.Data["prefix"]) == "198.51.101.0/24" && err != nil && strings.Contains(err.Error(), "Nexthop has invalid gateway") {
					return true, ""
				}
				seen = append(seen, fmt.Sprintf("%v: %v", e.Data["prefix"], err))
			}
		}
		return false, fmt.Sprintf("refusals logged: %q", seen)
	})
}

// TestImportFromBIRD: a BIRD leaf next to an FRR leaf; BIRD announces over
// an IPv6 session both an IPv6 prefix and, with extended next hop (RFC
// 8950), an IPv4 prefix whose next hop is BIRD's link-local address.
func TestImportFromBIRD(t *testing.T) {
	f := newImportFabric(t)
	f.addFRRLeaf(1, "198.51.100.0/24")
	hostAddr, birdAddr, ns := f.link(2)
	testnet.StartBIRD(t, ns, fmt.Sprintf(`router id %s;
protocol device {}
protocol static s4 { ipv4; route 198.51.100.0/24 blackhole; }
protocol static s6 { ipv6; route 2001:db8:100::/48 blackhole; }
protocol static s4ll { ipv4; route 198.51.104.0/24 blackhole; }
protocol bgp v4 {
  local %s as 65102; neighbor %s as %d; connect retry time 1;
  ipv4 { import none; export where proto = "s4"; };
}
protocol bgp v6 {
  local fe80::2 as 65102; neighbor fe80::1%%uplink as %d; interface "uplink"; connect retry time 1;
  ipv6 { import none; export where proto = "s6"; next hop self; };
  ipv4 { import none; export where proto = "s4ll"; extended next hop on; next hop self; };
}
`, birdAddr, birdAddr, hostAddr, hostAS, hostAS))
	f.addPeer(birdAddr, 65102)
	testnet.Host.AddAddr(t, "leaf2", "fe80::1/64")
	ns.AddAddr(t, "uplink", "fe80::2/64")
	f.addPeerIPv6LinkLocal("fe80::2%leaf2", 65102)
	f.startImporter(ImportPolicy{}, ownsNothing, testLog())
	f.waitKernel("routes from FRR and BIRD", map[string][]string{
		"198.51.100.0/24":   {"via 192.0.2.10 dev leaf2", "via 192.0.2.6 dev leaf1"},
		"2001:db8:100::/48": {"via fe80::2 dev leaf2"},
		"198.51.104.0/24":   {"via inet6 fe80::2 dev leaf2"},
	})
}

func (f *importFabric) addPeerIPv6LinkLocal(addr string, as uint32) {
	f.t.Helper()
	family := func(afi api.Family_Afi) *api.AfiSafi {
		return &api.AfiSafi{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}, Enabled: true}}
	}
	err := f.s.AddPeer(context.Background(), &api.AddPeerRequest{Peer: &api.Peer{
		Conf:     &api.PeerConf{NeighborAddress: addr, PeerAsn: as},
		Timers:   &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1, HoldTime: 9, KeepaliveInterval: 3}},
		AfiSafis: []*api.AfiSafi{family(api.Family_AFI_IP6), family(api.Family_AFI_IP)},
	}})
	if err != nil {
		f.t.Fatal(err)
	}
}

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func apiPath(t testing.TB, afi api.Family_Afi, prefix string, bits uint32, neighbor string, attrs ...proto.Message) *api.Path {
	p := &api.Path{
		Family:     &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST},
		Nlri:       mustAny(t, &api.IPAddressPrefix{Prefix: prefix, PrefixLen: bits}),
		NeighborIp: neighbor,
	}
	for _, a := range attrs {
		p.Pattrs = append(p.Pattrs, mustAny(t, a))
	}
	return p
}

func TestDecodePath(t *testing.T) {
	v4, v6 := api.Family_AFI_IP, api.Family_AFI_IP6
	mp := func(hops ...string) *api.MpReachNLRIAttribute { return &api.MpReachNLRIAttribute{NextHops: hops} }
	withdrawn := apiPath(t, v4, "198.51.100.0", 24, "192.0.2.2")
	withdrawn.IsWithdraw = true
	evpn := apiPath(t, v4, "198.51.100.0", 24, "192.0.2.2")
	evpn.Family.Safi = api.Family_SAFI_EVPN
	tests := []struct {
		name    string
		path    *api.Path
		want    learnedPath
		wantErr string
	}{
		{"IPv4 NEXT_HOP", apiPath(t, v4, "198.51.100.7", 24, "192.0.2.2", &api.NextHopAttribute{NextHop: "192.0.2.2"}),
			learnedPath{prefix: pfx("198.51.100.0/24"), nexthop: addr("192.0.2.2"), peer: addr("192.0.2.2"), family: familyUnicast}, ""},
		{"IPv6 global and link-local: global", apiPath(t, v6, "2001:db8::", 32, "2001:db8:1::2", mp("fe80::2", "2001:db8:1::2")),
			learnedPath{prefix: pfx("2001:db8::/32"), nexthop: addr("2001:db8:1::2"), peer: addr("2001:db8:1::2"), family: familyUnicast}, ""},
		{"IPv4 via IPv6 link-local", apiPath(t, v4, "198.51.100.0", 24, "fe80::2", mp("fe80::2")),
			learnedPath{prefix: pfx("198.51.100.0/24"), nexthop: addr("fe80::2"), peer: addr("fe80::2"), family: familyUnicast}, ""},
		{"unspecified global skipped", apiPath(t, v6, "2001:db8::", 32, "fe80::2", mp("::", "fe80::2")),
			learnedPath{prefix: pfx("2001:db8::/32"), nexthop: addr("fe80::2"), peer: addr("fe80::2"), family: familyUnicast}, ""},
		{"local path", apiPath(t, v4, "198.51.100.0", 24, "<nil>", &api.NextHopAttribute{NextHop: "0.0.0.0"}),
			learnedPath{prefix: pfx("198.51.100.0/24"), family: familyUnicast}, ""},
		{"withdrawn", withdrawn, learnedPath{prefix: pfx("198.51.100.0/24"), peer: addr("192.0.2.2"), withdrawn: true, family: familyUnicast}, ""},
		{"other family ignored", evpn, learnedPath{}, ""},
		{"no next hop: the peer", apiPath(t, v4, "198.51.100.0", 24, "192.0.2.2"),
			learnedPath{prefix: pfx("198.51.100.0/24"), nexthop: addr("192.0.2.2"), peer: addr("192.0.2.2"), family: familyUnicast}, ""},
		{"only :: from a link-local peer: the peer (BIRD)", apiPath(t, v6, "2001:db8::", 32, "fe80::2", mp("::")),
			learnedPath{prefix: pfx("2001:db8::/32"), nexthop: addr("fe80::2"), peer: addr("fe80::2"), family: familyUnicast}, ""},
		{"bad NEXT_HOP bytes", &api.Path{Family: &api.Family{Afi: v4, Safi: api.Family_SAFI_UNICAST},
			Nlri: mustAny(t, &api.IPAddressPrefix{Prefix: "198.51.100.0", PrefixLen: 24}), NeighborIp: "192.0.2.2",
			Pattrs: []*anypb.Any{{TypeUrl: "type.googleapis.com/apipb.NextHopAttribute", Value: []byte{0xff}}}}, learnedPath{}, "decode NEXT_HOP"},
		{"prefix too long", apiPath(t, v4, "198.51.100.0", 33, "192.0.2.2"), learnedPath{}, "not a prefix of family"},
		{"IPv6 NLRI in IPv4 family", apiPath(t, v4, "2001:db8::", 32, "192.0.2.2"), learnedPath{}, "not a prefix of family"},
		{"NLRI of another type", &api.Path{Family: &api.Family{Afi: v4, Safi: api.Family_SAFI_UNICAST}, Nlri: mustAny(t, &api.NextHopAttribute{})},
			learnedPath{}, "decode NLRI"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodePath(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

// FuzzDecodePath feeds arbitrary NLRI and attribute bytes, as a peer could
// send them through GoBGP: decodePath must return an error, never panic, and
// a decoded prefix is always masked and of the path's family.
func FuzzDecodePath(f *testing.F) {
	seed := apiPath(f, api.Family_AFI_IP, "198.51.100.0", 24, "192.0.2.2", &api.MpReachNLRIAttribute{NextHops: []string{"fe80::1"}})
	f.Add(seed.Nlri.Value, seed.Pattrs[0].Value, uint8(1), false)
	f.Fuzz(func(t *testing.T, nlri, attr []byte, afi uint8, withdraw bool) {
		p := &api.Path{
			Family:     &api.Family{Afi: api.Family_Afi(afi), Safi: api.Family_SAFI_UNICAST},
			Nlri:       &anypb.Any{TypeUrl: seed.Nlri.TypeUrl, Value: nlri},
			Pattrs:     []*anypb.Any{{TypeUrl: seed.Pattrs[0].TypeUrl, Value: attr}, {TypeUrl: "type.googleapis.com/apipb.NextHopAttribute", Value: attr}},
			NeighborIp: "192.0.2.2",
			IsWithdraw: withdraw,
		}
		lp, err := decodePath(p)
		if err != nil || lp.family == familyOther {
			return
		}
		if lp.prefix != lp.prefix.Masked() || lp.prefix.Addr().Is4() != (afi == 1) {
			t.Fatalf("decoded %v from family %d", lp.prefix, afi)
		}
		if !withdraw && !lp.nexthop.IsValid() {
			t.Fatalf("decoded a path without a next hop: %+v", lp)
		}
	})
}

// TestImportSharesEqualPathSets: prefixes learned from the same peer over
// the same next hop keep one path set between them, not a copy each.
func TestImportSharesEqualPathSets(t *testing.T) {
	f := newImportFabric(t)
	prefixes := []string{"198.51.100.0/24", "198.51.101.0/24", "198.51.102.0/24"}
	f.addFRRLeaf(1, prefixes...)
	im, stop := f.startImporter(ImportPolicy{}, ownsNothing, testLog())
	want := map[string][]string{}
	for _, p := range prefixes {
		want[p] = []string{"via 192.0.2.6 dev leaf1"}
	}
	f.waitKernel("the leaf's routes", want)
	stop() // learned belongs to the importer's goroutine until then
	leaf := netip.MustParseAddr("192.0.2.6")
	first := im.learned[netip.MustParsePrefix(prefixes[0])]
	if !slices.Equal(first, []hop{{nexthop: leaf, peer: leaf}}) {
		t.Fatalf("learned %v for %s, want next hop and peer %s", first, prefixes[0], leaf)
	}
	for _, p := range prefixes[1:] {
		if paths := im.learned[netip.MustParsePrefix(p)]; len(paths) != 1 || &paths[0] != &first[0] {
			t.Errorf("%s holds its own copy of the path set %v", p, paths)
		}
	}
}
