// Package bench measures the plugin's binary on one host: a container's
// endpoint cycle through its socket beside the bare kernel work of the same
// cycle, and many callers at once, each with a baseline measured in the
// same run. The endpoint cycle needs ipvlan links, so the lab VM runs these
// (`make bench`); the concurrent calls run anywhere.
//
// IPVLAN_BGP_BIN names the plugin binary to measure and
// IPVLAN_BGP_BASELINE_BIN an earlier one to compare with (the Makefile
// builds it from BASELINE_REF).
package bench

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	netapi "github.com/docker/go-plugins-helpers/network"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/dockertest"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

func TestMain(m *testing.M) { testnet.Main(m) }

// binary is a plugin binary named by an environment variable; without it
// the benchmark cannot run, which is a failure, not a skip.
func binary(b *testing.B, env string) string {
	b.Helper()
	bin := os.Getenv(env)
	if bin == "" {
		b.Fatalf("%s names no plugin binary", env)
	}
	return bin
}

// parent makes the link containers' links hang off: a veth to a far
// namespace (a NIC for all the plugin can tell).
func parent(b *testing.B, name string) {
	b.Helper()
	far := testnet.NewNS(b, "far")
	testnet.Veth(b, testnet.Host, name, far, name+"p")
}

// BenchmarkConcurrentCalls is `docker compose up` and `docker service
// scale` on one host: 50 callers at once, each starting 20 containers'
// worth of calls (RequestAddress, CreateEndpoint), then removing them
// (DeleteEndpoint, ReleaseAddress), 1,000 containers in all, against the
// baseline binary in the same run. Every answer waits for its record on
// disk. It checks the 1,000 addresses are distinct.
func BenchmarkConcurrentCalls(b *testing.B) {
	testnet.RequireRoot(b)
	parent(b, "eth0")
	for _, which := range []struct{ name, env string }{{"baseline", "IPVLAN_BGP_BASELINE_BIN"}, {"plugin", "IPVLAN_BGP_BIN"}} {
		b.Run(which.name, func(b *testing.B) {
			bin := binary(b, which.env)
			for b.Loop() {
				p := dockertest.Start(b, bin, "LOG_LEVEL=warn")
				calls, took, medians := concurrentContainers(b, p.Docker.As(dockertest.Docker28), 50, 20)
				b.ReportMetric(float64(calls)/took.Seconds(), "calls/s")
				b.ReportMetric(float64(medians[0].Microseconds())/1000, "ms/start")
				b.ReportMetric(float64(medians[1].Microseconds())/1000, "ms/rm")
			}
		})
	}
}

// concurrentContainers runs callers goroutines that each start perCaller
// containers' endpoints, then remove them; it returns the calls made, the
// time they took and the median start and removal.
func concurrentContainers(b *testing.B, d *dockertest.Docker, callers, perCaller int) (int, time.Duration, [2]time.Duration) {
	b.Helper()
	n, err := d.NetworkCreate(dockertest.NetworkSpec{ID: id(0, "c"), Subnet: "10.80.0.0/16", Options: map[string]string{"parent": "eth0"}})
	if err != nil {
		b.Fatal(err)
	}
	type started struct {
		c    *dockertest.Container
		took time.Duration
	}
	results := make([][]started, callers)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perCaller {
				t0 := time.Now()
				c, err := d.Run(n, id(i*perCaller+j+1, "e"), nil)
				if err != nil {
					b.Error(err)
					return
				}
				results[i] = append(results[i], started{c, time.Since(t0)})
			}
		}()
	}
	wg.Wait()
	var starts, removals []time.Duration
	seen := map[string]bool{}
	for _, rs := range results {
		for _, r := range rs {
			starts = append(starts, r.took)
			for _, a := range r.c.Addresses {
				if seen[a] {
					b.Errorf("address %s handed out twice", a)
				}
				seen[a] = true
			}
		}
	}
	if len(seen) != callers*perCaller {
		b.Fatalf("%d distinct addresses for %d containers", len(seen), callers*perCaller)
	}
	var mu sync.Mutex
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, r := range results[i] {
				t0 := time.Now()
				if err := d.Rm(n, r.c); err != nil {
					b.Error(err)
				}
				mu.Lock()
				removals = append(removals, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(begin)
	if err := d.NetworkRm(n); err != nil {
		b.Fatal(err)
	}
	return 4 * callers * perCaller, took, [2]time.Duration{median(starts), median(removals)}
}

// BenchmarkEndpointCycle is one container's life through the plugin's
// socket, step by step as Docker sends it (RequestAddress, CreateEndpoint,
// Join; Docker moves the link into the container and back; Leave,
// DeleteEndpoint, ReleaseAddress), beside the bare kernel work of the same
// cycle in the same run: create the ipvlan link, move it into a namespace
// and back, delete it. It prints each step's median.
func BenchmarkEndpointCycle(b *testing.B) {
	testnet.RequireRoot(b)
	parent(b, "eth0")
	container := testnet.NewNS(b, "ctr")
	ctrNS, err := netns.GetFromName(container.Name)
	if err != nil {
		b.Fatal(err)
	}
	defer ctrNS.Close()
	inCtr, err := netlink.NewHandleAt(ctrNS)
	if err != nil {
		b.Fatal(err)
	}
	defer inCtr.Close()
	p := dockertest.Start(b, binary(b, "IPVLAN_BGP_BIN"), "LOG_LEVEL=warn")
	d := p.Docker.As(dockertest.Docker28)
	n, err := d.NetworkCreate(dockertest.NetworkSpec{ID: id(0, "c"), Subnet: "10.81.0.0/16", Options: map[string]string{"parent": "eth0"}})
	if err != nil {
		b.Fatal(err)
	}
	plugin, bare := steps{}, steps{}
	i := 0
	for b.Loop() {
		i++
		pluginCycle(b, d, n, id(i, "e"), inCtr, ctrNS, plugin)
		bareCycle(b, inCtr, ctrNS, bare)
	}
	b.StopTimer()
	pluginTotal, bareTotal := plugin.print(b, "plugin"), bare.print(b, "bare kernel work")
	moves := plugin.median("move in") + plugin.median("move back")
	b.ReportMetric(ms(pluginTotal), "ms/plugin-cycle")
	b.ReportMetric(ms(bareTotal), "ms/bare-cycle")
	b.ReportMetric(float64(pluginTotal)/float64(bareTotal), "plugin/bare")
	b.ReportMetric(float64(pluginTotal-moves)/float64(bareTotal), "calls/bare")
}

// steps collects each step's durations.
type steps map[string][]time.Duration

func (s steps) time(name string, fn func() error) error {
	t0 := time.Now()
	err := fn()
	s[name] = append(s[name], time.Since(t0))
	return err
}

func (s steps) median(name string) time.Duration { return median(s[name]) }

// print logs each step's median in the order they ran and returns their
// sum.
func (s steps) print(b *testing.B, what string) time.Duration {
	names := make([]string, 0, len(s))
	for name := range s {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return stepOrder(names[i]) < stepOrder(names[j]) })
	var total time.Duration
	var lines []string
	for _, name := range names {
		m := s.median(name)
		total += m
		lines = append(lines, fmt.Sprintf("  %-16s %8.3f ms", name, ms(m)))
	}
	b.Logf("%s, median of %d cycles:\n%s\n  %-16s %8.3f ms", what, len(s[names[0]]), strings.Join(lines, "\n"), "cycle", ms(total))
	return total
}

var order = []string{"RequestAddress", "CreateEndpoint", "Join", "create link", "move in", "move back", "Leave", "DeleteEndpoint", "delete link", "ReleaseAddress"}

func stepOrder(name string) int { return slices.Index(order, name) }

func pluginCycle(b *testing.B, d *dockertest.Docker, n *dockertest.Network, ep string, inCtr *netlink.Handle, ctr netns.NsHandle, s steps) {
	b.Helper()
	var addr struct{ Address string }
	must(b, s.time("RequestAddress", func() error {
		return d.Call("IpamDriver.RequestAddress", map[string]any{"PoolID": n.Pools[0].ID, "Address": "", "Options": nil}, &addr)
	}))
	must(b, s.time("CreateEndpoint", func() error {
		return d.Call("NetworkDriver.CreateEndpoint", netapi.CreateEndpointRequest{NetworkID: n.ID, EndpointID: ep,
			Interface: &netapi.EndpointInterface{Address: addr.Address}, Options: map[string]any{}}, nil)
	}))
	var joined struct{ InterfaceName struct{ SrcName string } }
	must(b, s.time("Join", func() error {
		return d.Call("NetworkDriver.Join", netapi.JoinRequest{NetworkID: n.ID, EndpointID: ep, SandboxKey: "/var/run/docker/netns/bench", Options: map[string]any{}}, &joined)
	}))
	name := joined.InterfaceName.SrcName
	must(b, s.time("move in", func() error { return moveLink(netlinkHost(), name, ctr) }))
	must(b, s.time("move back", func() error { return moveBack(inCtr, name) }))
	must(b, s.time("Leave", func() error {
		return d.Call("NetworkDriver.Leave", netapi.LeaveRequest{NetworkID: n.ID, EndpointID: ep}, nil)
	}))
	must(b, s.time("DeleteEndpoint", func() error {
		return d.Call("NetworkDriver.DeleteEndpoint", netapi.DeleteEndpointRequest{NetworkID: n.ID, EndpointID: ep}, nil)
	}))
	ip := netip.MustParsePrefix(addr.Address).Addr().String()
	must(b, s.time("ReleaseAddress", func() error {
		return d.Call("IpamDriver.ReleaseAddress", map[string]any{"PoolID": n.Pools[0].ID, "Address": ip}, nil)
	}))
}

func bareCycle(b *testing.B, inCtr *netlink.Handle, ctr netns.NsHandle, s steps) {
	b.Helper()
	h := netlinkHost()
	parentLink, err := h.LinkByName("eth0")
	must(b, err)
	link := &netlink.IPVlan{LinkAttrs: netlink.LinkAttrs{Name: "bare0", ParentIndex: parentLink.Attrs().Index}, Mode: netlink.IPVLAN_MODE_L3}
	must(b, s.time("create link", func() error { return h.LinkAdd(link) }))
	must(b, s.time("move in", func() error { return moveLink(h, "bare0", ctr) }))
	must(b, s.time("move back", func() error { return moveBack(inCtr, "bare0") }))
	must(b, s.time("delete link", func() error { return h.LinkDel(link) }))
}

// netlinkHost is a handle in the benchmark's own (the host's) namespace.
func netlinkHost() *netlink.Handle { return &netlink.Handle{} }

func moveLink(h *netlink.Handle, name string, to netns.NsHandle) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	return h.LinkSetNsFd(link, int(to))
}

// moveBack moves a link from the container to the host, as Docker does
// when a container stops.
func moveBack(inCtr *netlink.Handle, name string) error {
	link, err := inCtr.LinkByName(name)
	if err != nil {
		return err
	}
	host, err := netns.Get()
	if err != nil {
		return err
	}
	defer host.Close()
	return inCtr.LinkSetNsFd(link, int(host))
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// id is a Docker ID: n in hex, then fill.
func id(n int, fill string) string { return fmt.Sprintf("%08x", n) + strings.Repeat(fill, 56) }

// BenchmarkThousandEndpoints is 1,000 containers on one host, their calls
// sent through the plugin's socket as Docker sends them (50 at a time),
// each link moved into a container namespace, with a BIRD leaf as the
// plugin's BGP peer. It reports the time per container, the plugin's RSS at
// 1,000 endpoints, the time from the last Join to the last route in the
// leaf's kernel, the start-up time with 1,000 endpoints stored (socket
// listening, state reconciled), and that every route is withdrawn after the
// removal. Docker's own run of 1,000 containers does not fit the lab VM's
// memory (a containerd shim each); the lab's scale.sh runs fewer through
// Docker beside Docker's ipvlan driver.
func BenchmarkThousandEndpoints(b *testing.B) {
	testnet.RequireRoot(b)
	const total, callers = 1000, 50
	leaf := testnet.NewNS(b, "leaf")
	testnet.Veth(b, testnet.Host, "eth0", leaf, "swp1")
	testnet.Host.AddAddr(b, "eth0", "10.0.90.1/30")
	leaf.AddAddr(b, "swp1", "10.0.90.2/30")
	testnet.StartBIRD(b, leaf, `
router id 10.0.90.2;
protocol device {}
protocol kernel { ipv4 { export all; }; }
protocol bgp host { local 10.0.90.2 as 65090; neighbor 10.0.90.1 as 64512; connect retry time 1; ipv4 { import all; export none; }; }
`)
	containers := make([]netns.NsHandle, 10)
	for i := range containers {
		ns, err := netns.GetFromName(testnet.NewNS(b, "ctr").Name)
		must(b, err)
		defer ns.Close()
		containers[i] = ns
	}
	for b.Loop() {
		p := dockertest.Start(b, binary(b, "IPVLAN_BGP_BIN"), "LOG_LEVEL=info",
			"BGP_NEIGHBORS=10.0.90.2:65090", "BGP_HOLD_TIME=9", "BGP_ROUTER_ID=10.0.90.1")
		d := p.Docker.As(dockertest.Docker28)
		n, err := d.NetworkCreate(dockertest.NetworkSpec{ID: id(0, "c"), Subnet: "10.82.0.0/20", Options: map[string]string{"parent": "eth0"}})
		must(b, err)
		leafRoutes := func() int {
			out, _ := leaf.Try("ip", "-4", "route", "show", "root", "10.82.0.0/20")
			return strings.Count(out, "\n")
		}
		begin := time.Now()
		var lastJoin time.Time
		var mu sync.Mutex
		eps := parallel(b, total, callers, func(i int) string {
			ep := id(i+1, "e")
			c, err := d.Run(n, ep, nil)
			must(b, err)
			var joined struct{ InterfaceName struct{ SrcName string } }
			must(b, d.Call("NetworkDriver.Join", netapi.JoinRequest{NetworkID: n.ID, EndpointID: c.Endpoint,
				SandboxKey: "/var/run/docker/netns/bench", Options: map[string]any{}}, &joined))
			must(b, moveLink(netlinkHost(), joined.InterfaceName.SrcName, containers[i%len(containers)]))
			mu.Lock()
			lastJoin = time.Now()
			mu.Unlock()
			return ep
		})
		started := time.Since(begin)
		testnet.WaitFor(b, 5*time.Minute, fmt.Sprintf("%d routes in the leaf's kernel", total), func() (bool, string) {
			got := leafRoutes()
			return got >= total, fmt.Sprintf("%d routes", got)
		})
		toLeaf := time.Since(lastJoin)
		rss := rssMB(b, p.PID())

		must(b, syscall.Kill(p.PID(), syscall.SIGKILL))
		testnet.WaitFor(b, time.Minute, "the restarted plugin ready", func() (bool, string) {
			return strings.Count(p.Log(), "ready: state restored") >= 2, "not yet"
		})
		listening, ready := startupTimes(b, p.Log())

		begin = time.Now()
		parallel(b, total, callers, func(i int) string {
			ep := eps[i]
			must(b, d.Call("NetworkDriver.Leave", netapi.LeaveRequest{NetworkID: n.ID, EndpointID: ep}, nil))
			must(b, d.Call("NetworkDriver.DeleteEndpoint", netapi.DeleteEndpointRequest{NetworkID: n.ID, EndpointID: ep}, nil))
			return ep
		})
		removed := time.Since(begin)
		testnet.WaitFor(b, 5*time.Minute, "every route withdrawn from the leaf", func() (bool, string) {
			got := leafRoutes()
			return got == 0, fmt.Sprintf("%d routes left", got)
		})
		b.Logf("%d containers, %d callers: started in %v (%.1f ms each), every route in the leaf's kernel %v after the last Join; "+
			"RSS %.0f MB; start-up with %d endpoints stored: listening after %s, ready after %s; removed in %v, every route withdrawn",
			total, callers, started.Round(time.Millisecond), ms(started)/total, toLeaf.Round(time.Millisecond), rss, total, listening, ready, removed.Round(time.Millisecond))
		b.ReportMetric(ms(started)/total, "ms/container")
		b.ReportMetric(ms(toLeaf), "ms/last-join-to-leaf")
		b.ReportMetric(rss, "MB-RSS")
	}
}

// parallel runs fn for 0..total-1 from callers goroutines and returns what
// each returned, by index.
func parallel(b *testing.B, total, callers int, fn func(i int) string) []string {
	b.Helper()
	out := make([]string, total)
	next := make(chan int)
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = fn(i)
			}
		}()
	}
	for i := range total {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

func rssMB(b *testing.B, pid int) float64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must(b, err)
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.Atoi(f[1])
			must(b, err)
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// startupTimes reads the last run's "after" fields of its listening and
// ready log lines.
func startupTimes(b *testing.B, log string) (listening, ready string) {
	b.Helper()
	for _, line := range strings.Split(log, "\n") {
		field := func() string {
			_, rest, _ := strings.Cut(line, "after=")
			value, _, _ := strings.Cut(rest, " ")
			return value
		}
		switch {
		case strings.Contains(line, "listening for Docker"):
			listening = field()
		case strings.Contains(line, "ready: state restored"):
			ready = field()
		}
	}
	return listening, ready
}
