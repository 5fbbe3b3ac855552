package driver

import (
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
