package driver

import (
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	netapi "github.com/docker/go-plugins-helpers/network"
)

// BenchmarkCreateDeleteEndpoint is the driver's cost per container outside
// Join and Leave: two store transactions, each synced to disk.
func BenchmarkCreateDeleteEndpoint(b *testing.B) {
	e := newTestEnv(b)
	nw, ep := networkID(1), endpointID(1)
	mustCreateNetwork(b, e, networkReq(nw, dualStack("10.1.0", "fd00:1"), "parent", "eth0"))
	for b.Loop() {
		mustCreateEndpoint(b, e, endpointReq(nw, ep, "10.1.0.5/24", "fd00:1::5/64"))
		if err := e.d.DeleteEndpoint(ctx, &netapi.DeleteEndpointRequest{NetworkID: nw, EndpointID: ep}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJoinToAnnounce times Join, Docker's move of the link into the
// container, and the announcement that follows; then Leave. It reports the
// mean time from Join's call to the announcement as ms/announce.
func BenchmarkJoinToAnnounce(b *testing.B) {
	e := newTestEnv(b)
	e.requireLinkType("ipvlan")
	nw, ep := e.oneEndpoint()
	name := childName(ep)
	var toAnnounce time.Duration
	for b.Loop() {
		start := time.Now()
		e.join(nw, ep)
		e.moveToContainer(name)
		for len(e.ann.prefixes(ep)) == 0 {
			time.Sleep(100 * time.Microsecond)
		}
		toAnnounce += time.Since(start)
		e.moveToHost(name)
		if err := e.d.Leave(ctx, &netapi.LeaveRequest{NetworkID: nw, EndpointID: ep}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(toAnnounce.Seconds()*1000/float64(b.N), "ms/announce")
}

// BenchmarkConcurrentEndpoints is Docker creating and deleting endpoints
// in parallel (50 callers per CPU), against one per CPU in the same run:
// each answer waits for its record on disk, concurrent ones share the sync.
func BenchmarkConcurrentEndpoints(b *testing.B) {
	for _, callers := range []int{1, 50} {
		b.Run(fmt.Sprintf("callers-per-cpu=%d", callers), func(b *testing.B) {
			e := newTestEnv(b)
			nw := networkID(1)
			mustCreateNetwork(b, e, networkReq(nw, []*netapi.IPAMData{ipam("10.0.0.0/8", "")}, "parent", "eth0"))
			var next atomic.Uint32
			b.SetParallelism(callers)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := next.Add(1)
					ep := fmt.Sprintf("%08x", n) + strings.Repeat("e", 56)
					addr := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
					if _, err := e.d.CreateEndpoint(ctx, endpointReq(nw, ep, netip.PrefixFrom(addr, 8).String(), "")); err != nil {
						b.Error(err)
						return
					}
					if err := e.d.DeleteEndpoint(ctx, &netapi.DeleteEndpointRequest{NetworkID: nw, EndpointID: ep}); err != nil {
						b.Error(err)
					}
				}
			})
			b.ReportMetric(2*float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}

// BenchmarkRestartWithContainers is the driver's start-up with containers
// running: 250 joined endpoints, each link (a macvlan stand-in, as in the
// tests) in a namespace of its own, timed from start until every one is
// announced again. Finding each link among the namespaces is the cost that
// grows with the host.
func BenchmarkRestartWithContainers(b *testing.B) {
	e, announced := withContainers(b, 250)
	for b.Loop() {
		e.start()
		announced()
		e.stop()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/restart")
}
