package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	netapi "github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp"
	bgpconfig "github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

// requireKernelEnv, set to 1 in the lab VM, turns a missing link type from
// a skip into a failure.
const requireKernelEnv = "IPVLAN_BGP_REQUIRE_KERNEL"

// testEnv is a host namespace with a NIC (eth0, one end of a veth pair), a
// second namespace standing in for a container, a state file and a driver
// with a recording announcer.
type testEnv struct {
	t         testing.TB
	host      netns.NsHandle
	h         *netlink.Handle // in host
	container netns.NsHandle
	hc        *netlink.Handle // in container
	dbPath    string
	db        *store.DB
	ann       *recorder
	ranges    LocalRanges
	// tune, when set, changes the driver's Config before each start.
	tune func(*Config)
	d    *Driver
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	testnet.RequireRoot(t)
	e := &testEnv{t: t, dbPath: filepath.Join(t.TempDir(), "state.db")}
	e.host = newNetns(t)
	e.h = handleIn(t, e.host)
	e.container = newNetns(t)
	e.hc = handleIn(t, e.container)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0", MTU: 1500, Flags: net.FlagUp}, PeerName: "peer0"}
	if err := e.h.LinkAdd(veth); err != nil {
		t.Fatalf("create veth parent: %v", err)
	}
	e.start()
	t.Cleanup(e.stop)
	return e
}

// newNetns makes a namespace that is deleted when the test ends.
func newNetns(t testing.TB) netns.NsHandle {
	t.Helper()
	ns, err := netns.GetFromName(testnet.NewNS(t, "drv").Name)
	if err != nil {
		t.Fatalf("open netns: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

func handleIn(t testing.TB, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	t.Cleanup(h.Close)
	return h
}

// start opens the state file and runs New and Reconcile, as the plugin's
// main does, with a fresh announcer (the speaker restarts with the plugin).
func (e *testEnv) start() {
	e.t.Helper()
	db, err := store.Open(e.dbPath)
	if err != nil {
		e.t.Fatalf("open store: %v", err)
	}
	e.db, e.ann = db, newRecorder()
	cfg := Config{Store: db, Announcer: e.ann, Ranges: e.ranges, Netlink: e.h, Netns: e.host, Log: testLog(e.t)}
	if e.tune != nil {
		e.tune(&cfg)
	}
	e.d, err = New(cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	if err := e.d.Reconcile(context.Background()); err != nil {
		e.t.Fatalf("Reconcile: %v", err)
	}
}

func (e *testEnv) stop() {
	if e.d != nil {
		e.d.Close()
		e.d = nil
	}
	if e.db != nil {
		_ = e.db.Close()
		e.db = nil
	}
}

func (e *testEnv) restart() {
	e.t.Helper()
	e.stop()
	e.start()
}

// requireLinkType skips the test when the kernel cannot make links of kind,
// unless IPVLAN_BGP_REQUIRE_KERNEL=1, which makes it fail.
func (e *testEnv) requireLinkType(kind string) {
	e.t.Helper()
	eth0 := e.link("eth0").Attrs().Index
	attrs := netlink.LinkAttrs{Name: "probe0", ParentIndex: eth0}
	probes := map[string]netlink.Link{
		"ipvlan": &netlink.IPVlan{LinkAttrs: attrs, Mode: netlink.IPVLAN_MODE_L3},
		"vlan":   &netlink.Vlan{LinkAttrs: attrs, VlanId: 4000},
		"dummy":  &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "probe0"}},
	}
	err := e.h.LinkAdd(probes[kind])
	switch {
	case err == nil:
		if err := e.h.LinkDel(probes[kind]); err != nil {
			e.t.Fatalf("delete %s probe: %v", kind, err)
		}
	case !errors.Is(err, unix.EOPNOTSUPP):
		e.t.Fatalf("probe %s links: %v", kind, err)
	case os.Getenv(requireKernelEnv) == "1":
		e.t.Fatalf("the kernel has no %s links, and %s=1 requires them", kind, requireKernelEnv)
	default:
		e.t.Skipf("the kernel has no %s links (%s=1 makes this a failure)", kind, requireKernelEnv)
	}
}

// link returns the host link called name, failing the test if it is absent.
func (e *testEnv) link(name string) netlink.Link {
	e.t.Helper()
	l, err := e.h.LinkByName(name)
	if err != nil {
		e.t.Fatalf("link %s: %v", name, err)
	}
	return l
}

func (e *testEnv) hasLink(name string) bool {
	_, err := e.h.LinkByName(name)
	return err == nil
}

func (e *testEnv) linkNames() []string {
	e.t.Helper()
	all, err := e.h.LinkList()
	if err != nil {
		e.t.Fatalf("list links: %v", err)
	}
	var names []string
	for _, l := range all {
		names = append(names, l.Attrs().Name)
	}
	slices.Sort(names)
	return names
}

// moveToContainer does what Docker does after Join: it moves the link into
// the container's namespace.
func (e *testEnv) moveToContainer(name string) {
	e.t.Helper()
	if err := e.h.LinkSetNsFd(e.link(name), int(e.container)); err != nil {
		e.t.Fatalf("move %s into the container: %v", name, err)
	}
}

// containerLink is the link called name in the container.
func (e *testEnv) containerLink(name string) netlink.Link {
	e.t.Helper()
	l, err := e.hc.LinkByName(name)
	if err != nil {
		e.t.Fatalf("link %s in the container: %v", name, err)
	}
	return l
}

// moveToHost does what Docker does when a container leaves: it moves the
// link back under its original name.
func (e *testEnv) moveToHost(name string) {
	e.t.Helper()
	if err := e.hc.LinkSetNsFd(e.containerLink(name), int(e.host)); err != nil {
		e.t.Fatalf("move %s back to the host: %v", name, err)
	}
}

// storedKeys lists a bucket's keys.
func (e *testEnv) storedKeys(bucket string) []string {
	e.t.Helper()
	var keys []string
	err := e.db.View(func(tx *store.Tx) error {
		return tx.ForEach(bucket, func(key string, _ func(any) error) error {
			keys = append(keys, key)
			return nil
		})
	})
	if err != nil {
		e.t.Fatalf("read %s: %v", bucket, err)
	}
	slices.Sort(keys)
	return keys
}

// IDs that differ in their first characters, which name the links.
func networkID(n int) string  { return fmt.Sprintf("%02x", n) + strings.Repeat("c", 62) }
func endpointID(n int) string { return fmt.Sprintf("%02x", n) + strings.Repeat("e", 62) }

func networkReq(id string, pools []*netapi.IPAMData, opts ...string) *netapi.CreateNetworkRequest {
	req := &netapi.CreateNetworkRequest{NetworkID: id, Options: generic(opts...)}
	for _, p := range pools {
		if strings.Contains(p.Pool, ":") {
			req.IPv6Data = append(req.IPv6Data, p)
		} else {
			req.IPv4Data = append(req.IPv4Data, p)
		}
	}
	return req
}

func ipam(pool, gateway string) *netapi.IPAMData {
	return &netapi.IPAMData{AddressSpace: "ipvlan-bgp-local", Pool: pool, Gateway: gateway}
}

func endpointReq(network, id, v4, v6 string) *netapi.CreateEndpointRequest {
	return &netapi.CreateEndpointRequest{NetworkID: network, EndpointID: id, Interface: &netapi.EndpointInterface{Address: v4, AddressIPv6: v6}}
}

// recorder is the BGP speaker as the tests see it: it keeps what each owner
// wants announced.
// recorder keeps what the driver asks to announce; the export rules it
// checks are a real speaker's with the default settings.
type recorder struct {
	mu      sync.Mutex
	current map[string][]route.Advert
	rules   *bgp.Speaker
}

func newRecorder() *recorder {
	cfg, err := bgpconfig.Load(func(key string) string {
		if key == bgpconfig.EnvConfigFile {
			return os.DevNull
		}
		return ""
	})
	if err != nil {
		panic(err)
	}
	return &recorder{current: map[string][]route.Advert{}, rules: bgp.NewSpeaker(cfg, bgp.Options{})}
}

func (r *recorder) CheckExport(p netip.Prefix) error { return r.rules.CheckExport(p) }

func (r *recorder) Set(owner string, adverts []route.Advert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(adverts) == 0 {
		delete(r.current, owner)
		return
	}
	r.current[owner] = slices.Clone(adverts)
}

func (r *recorder) adverts(owner string) []route.Advert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.current[owner])
}

// prefixes is what owner announces, as sorted strings.
func (r *recorder) prefixes(owner string) []string {
	var out []string
	for _, a := range r.adverts(owner) {
		out = append(out, a.Prefix.String())
	}
	slices.Sort(out)
	return out
}

// waitFor waits until owner announces exactly want (nil: nothing).
func (r *recorder) waitFor(t testing.TB, owner string, want ...string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(r.prefixes(owner), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s announces %v, want %v", short(owner), r.prefixes(owner), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLog(t testing.TB) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(testLogWriter{t})
	l.SetLevel(logrus.DebugLevel)
	if _, bench := t.(*testing.B); bench {
		l.SetLevel(logrus.WarnLevel)
	}
	return logrus.NewEntry(l)
}
