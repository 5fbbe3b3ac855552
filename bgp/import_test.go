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

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
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
	s := server.NewBgpServer() // logging nowhere
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
func (f *importFabric) startImporter(policy config.ImportPolicy, owned func(netip.Prefix) bool, log *logrus.Entry) (im *importer, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	connected, err := fib.NewConnected(log)
	if err != nil {
		f.t.Fatal(err)
	}
	im = newImporter(importerDeps{kernel: f.table, links: sessionLinks(f.s), owned: owned, connected: connected, policy: policy, log: log})
	if err := feedImporter(ctx, f.s, im); err != nil {
		f.t.Fatal(err)
	}
	go func() {
		defer func() { done <- struct{}{} }()
		im.run(ctx)
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		connected.Run(ctx, im.ownedChanged)
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		<-done
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
	f.startImporter(config.ImportPolicy{}, ownsNothing, testLog())
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
	f.startImporter(config.ImportPolicy{}, ownsNothing, testLog())
	f.waitKernel("only the leaf's route not also originated here", map[string][]string{
		"198.51.101.0/24": {"via 192.0.2.6 dev leaf1"},
	})
}

func (f *importFabric) addLocalPath(prefix string) {
	f.t.Helper()
	nlri, err := bgppkt.NewIPAddrPrefix(netip.MustParsePrefix(prefix))
	if err != nil {
		f.t.Fatal(err)
	}
	path := &apiutil.Path{Family: bgppkt.RF_IPv4_UC, Nlri: nlri, Attrs: []bgppkt.PathAttributeInterface{
		bgppkt.NewPathAttributeOrigin(0), mustNexthop(f.t, "192.0.2.5")}}
	if _, err := f.s.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}}); err != nil {
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
		policy  config.ImportPolicy
		want    []string
		refused map[string]string // prefix → words of the logged reason
	}{
		{"default refused", config.ImportPolicy{}, []string{"198.51.100.0/24", "100.64.0.0/24"},
			map[string]string{"0.0.0.0/0": defaults, "0.0.0.0/1": defaults, "128.0.0.0/1": defaults, "192.0.2.4/31": connected,
				"203.0.113.0/24": "owns", "203.0.113.64/26": "inside 203.0.113.0/24"}},
		{"default allowed", config.ImportPolicy{AllowDefault: true}, []string{"198.51.100.0/24", "100.64.0.0/24", "default", "0.0.0.0/1", "128.0.0.0/1"},
			map[string]string{"192.0.2.4/31": connected, "203.0.113.0/24": "owns", "203.0.113.64/26": "owns"}},
		{"connected allowed", config.ImportPolicy{AllowConnected: true}, []string{"198.51.100.0/24", "100.64.0.0/24", "192.0.2.4/31"},
			map[string]string{"0.0.0.0/0": defaults, "0.0.0.0/1": defaults, "128.0.0.0/1": defaults, "203.0.113.0/24": "owns", "203.0.113.64/26": "owns"}},
		{"allow list", config.ImportPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/22")}}, []string{"198.51.100.0/24"},
			map[string]string{"100.64.0.0/24": "allow list", "0.0.0.0/0": "default", "0.0.0.0/1": "default", "128.0.0.0/1": "default",
				"192.0.2.4/31": "a subnet of the host's own", "203.0.113.0/24": "allow list", "203.0.113.64/26": "allow list"}},
		{"allow everything, owned still refused", config.ImportPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, AllowDefault: true, AllowConnected: true},
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
	f.startImporter(config.ImportPolicy{}, ownsNothing, testLog())
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
	im, _ := f.startImporter(config.ImportPolicy{}, func(p netip.Prefix) bool {
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
	f.startImporter(config.ImportPolicy{}, ownsNothing, logrus.NewEntry(log))
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
	f.startImporter(config.ImportPolicy{}, ownsNothing, testLog())
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

func mustNexthop(t testing.TB, addr string) *bgppkt.PathAttributeNextHop {
	a, err := bgppkt.NewPathAttributeNextHop(netip.MustParseAddr(addr))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// mpReach is an MP_REACH_NLRI attribute with a global and, optionally, a
// link-local next hop, as a peer would send it.
func mpReach(t testing.TB, prefix string, hops ...string) *bgppkt.PathAttributeMpReachNLRI {
	var addrs []netip.Addr
	for _, h := range hops {
		addrs = append(addrs, netip.MustParseAddr(h))
	}
	nlri, err := bgppkt.NewIPAddrPrefix(netip.MustParsePrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	family := bgppkt.RF_IPv6_UC
	if nlri.Prefix.Addr().Is4() {
		family = bgppkt.RF_IPv4_UC
	}
	a, err := bgppkt.NewPathAttributeMpReachNLRI(family, []bgppkt.PathNLRI{{NLRI: nlri}}, addrs...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// learned is a path of GoBGP's watch from peer ("" for our own).
func learned(family bgppkt.Family, nlri bgppkt.NLRI, peer string, attrs ...bgppkt.PathAttributeInterface) *apiutil.Path {
	p := &apiutil.Path{Family: family, Nlri: nlri, Attrs: attrs}
	if peer != "" {
		p.PeerAddress = netip.MustParseAddr(peer)
	}
	return p
}

func prefixNLRI(t testing.TB, prefix string) *bgppkt.IPAddrPrefix {
	nlri, err := bgppkt.NewIPAddrPrefix(netip.MustParsePrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	return nlri
}

func TestDecodePath(t *testing.T) {
	v4, v6 := bgppkt.RF_IPv4_UC, bgppkt.RF_IPv6_UC
	n4, n6 := prefixNLRI(t, "198.51.100.0/24"), prefixNLRI(t, "2001:db8::/32")
	withdrawn := learned(v4, n4, "192.0.2.2")
	withdrawn.Withdrawal = true
	unmasked := &bgppkt.IPAddrPrefix{IPAddrPrefixDefault: bgppkt.IPAddrPrefixDefault{Prefix: netip.MustParsePrefix("198.51.100.7/24")}}
	change := func(prefix, nexthop, peer string) pathChange {
		return pathChange{prefix: pfx(prefix), hop: hop{nexthop: addr(nexthop), peer: addr(peer)}}
	}
	tests := []struct {
		name    string
		path    *apiutil.Path
		want    pathChange
		wantOK  bool
		wantErr string
	}{
		{"IPv4 NEXT_HOP, prefix masked", learned(v4, unmasked, "192.0.2.2", mustNexthop(t, "192.0.2.2")),
			change("198.51.100.0/24", "192.0.2.2", "192.0.2.2"), true, ""},
		{"IPv6 global and link-local: global", learned(v6, n6, "2001:db8:1::2", mpReach(t, "2001:db8::/32", "2001:db8:1::2", "fe80::2")),
			change("2001:db8::/32", "2001:db8:1::2", "2001:db8:1::2"), true, ""},
		{"IPv4 via IPv6 link-local", learned(v4, n4, "fe80::2", mpReach(t, "198.51.100.0/24", "fe80::2")),
			change("198.51.100.0/24", "fe80::2", "fe80::2"), true, ""},
		{"unspecified global skipped", learned(v6, n6, "fe80::2", mpReach(t, "2001:db8::/32", "::", "fe80::2")),
			change("2001:db8::/32", "fe80::2", "fe80::2"), true, ""},
		{"a zoned peer", learned(v6, n6, "fe80::2%uplink", mpReach(t, "2001:db8::/32", "fe80::2")),
			change("2001:db8::/32", "fe80::2", "fe80::2"), true, ""},
		{"local path", learned(v4, n4, "", mustNexthop(t, "0.0.0.0")), pathChange{}, false, ""},
		{"withdrawn", withdrawn, pathChange{prefix: pfx("198.51.100.0/24"), hop: hop{peer: addr("192.0.2.2")}, withdrawn: true}, true, ""},
		{"other family ignored", learned(bgppkt.RF_EVPN, n4, "192.0.2.2"), pathChange{}, false, ""},
		{"no next hop: the peer", learned(v4, n4, "192.0.2.2"), change("198.51.100.0/24", "192.0.2.2", "192.0.2.2"), true, ""},
		{"only :: from a link-local peer: the peer (BIRD)", learned(v6, n6, "fe80::2", mpReach(t, "2001:db8::/32", "::")),
			change("2001:db8::/32", "fe80::2", "fe80::2"), true, ""},
		{"IPv6 NLRI in IPv4 family", learned(v4, n6, "192.0.2.2"), pathChange{}, false, "not a prefix of family"},
		{"NLRI of another type", learned(v4, &bgppkt.LabeledIPAddrPrefix{}, "192.0.2.2"), pathChange{}, false, "NLRI *bgp.LabeledIPAddrPrefix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := decodePath(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || ok != tc.wantOK || got != tc.want {
				t.Fatalf("got %+v, %v, %v; want %+v, %v", got, ok, err, tc.want, tc.wantOK)
			}
		})
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

// FuzzDecodePath feeds arbitrary NLRI and attribute bytes, as a peer could
// send them, through GoBGP's own decoders: decodePath must return an error,
// never panic, and a decoded prefix is always masked and of the path's
// family.
func FuzzDecodePath(f *testing.F) {
	seed := mpReach(f, "198.51.100.0/24", "fe80::1")
	nlri, err := seed.Value[0].NLRI.Serialize()
	if err != nil {
		f.Fatal(err)
	}
	attr, err := seed.Serialize()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(nlri, attr, true, false)
	f.Fuzz(func(t *testing.T, nlriBytes, attrBytes []byte, ipv4, withdraw bool) {
		family := bgppkt.RF_IPv6_UC
		if ipv4 {
			family = bgppkt.RF_IPv4_UC
		}
		nlri, err := bgppkt.NLRIFromSlice(family, nlriBytes)
		if err != nil {
			return
		}
		p := &apiutil.Path{Family: family, Nlri: nlri, PeerAddress: addr("192.0.2.2"), Withdrawal: withdraw}
		if a, err := bgppkt.GetPathAttribute(attrBytes); err == nil && a.DecodeFromBytes(attrBytes) == nil {
			p.Attrs = []bgppkt.PathAttributeInterface{a}
		}
		c, ok, err := decodePath(p)
		if err != nil || !ok {
			return
		}
		if c.prefix != c.prefix.Masked() || c.prefix.Addr().Is4() != ipv4 {
			t.Fatalf("decoded %v from family %s", c.prefix, family)
		}
		if !withdraw && !c.hop.nexthop.IsValid() {
			t.Fatalf("decoded a path without a next hop: %+v", c)
		}
	})
}

// TestImportSharesEqualPathSets: prefixes learned from the same peer over
// the same next hop keep one path set between them, not a copy each.
func TestImportSharesEqualPathSets(t *testing.T) {
	f := newImportFabric(t)
	prefixes := []string{"198.51.100.0/24", "198.51.101.0/24", "198.51.102.0/24"}
	f.addFRRLeaf(1, prefixes...)
	im, stop := f.startImporter(config.ImportPolicy{}, ownsNothing, testLog())
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
