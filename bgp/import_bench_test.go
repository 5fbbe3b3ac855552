package bgp

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ipvlan-bgp/ipvlan-bgp/fib"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

const importBenchRoutes = 100_000

// baselineProtocol marks the baseline's routes so they never mix with ours.
const baselineProtocol = 202

// importBenchPrefix is the i-th /24 from 16.0.0.0 on.
func importBenchPrefix(i int) string {
	return fmt.Sprintf("%d.%d.%d.0/24", 16+i>>16, i>>8&0xff, i&0xff)
}

// BenchmarkImport100k measures the time from the BGP session's start until
// 100,000 routes a BIRD leaf announces are all in the kernel through GoBGP,
// the importer and fib; and, in the same run, the same routes written by
// `ip -batch` (the baseline). Run with -benchtime=1x: one iteration is a
// whole session.
func BenchmarkImport100k(b *testing.B) {
	f := newImportFabric(b)
	host, leaf, ns := f.link(1)
	var conf strings.Builder
	fmt.Fprintf(&conf, "router id %s;\nprotocol device {}\nprotocol static { ipv4;\n", leaf)
	for i := range importBenchRoutes {
		fmt.Fprintf(&conf, "route %s blackhole;\n", importBenchPrefix(i))
	}
	fmt.Fprintf(&conf, "}\nprotocol bgp up { local %s as 65101; neighbor %s as %d; connect retry time 1;\n ipv4 { import none; export all; }; }\n",
		leaf, host, hostAS)
	testnet.StartBIRD(b, ns, conf.String())
	f.startImporter(ImportPolicy{}, ownsNothing, testLog())

	for b.Loop() {
		start := time.Now()
		f.addPeer(leaf, 65101)
		testnet.WaitFor(b, 60*time.Second, "the importer to want every route", func() (bool, string) {
			n := f.table.Len()
			return n == importBenchRoutes, fmt.Sprintf("%d wanted", n)
		})
		waitKernelCount(b, fib.Protocol, importBenchRoutes, 60*time.Second)
		imported := time.Since(start)
		if err := f.s.DeletePeer(context.Background(), &api.DeletePeerRequest{Address: leaf}); err != nil {
			b.Fatal(err)
		}
		waitKernelCount(b, fib.Protocol, 0, 60*time.Second)

		baseline := ipBatchBaseline(b, leaf)
		b.ReportMetric(imported.Seconds(), "s/import")
		b.ReportMetric(baseline.Seconds(), "s/ip-batch")
		b.Logf("%d routes: BGP session → kernel %.2fs (%.0f routes/s); baseline ip -batch %.2fs (%.0f routes/s)",
			importBenchRoutes, imported.Seconds(), importBenchRoutes/imported.Seconds(), baseline.Seconds(), importBenchRoutes/baseline.Seconds())
	}
}

// waitKernelCount polls the kernel until it holds want routes of protocol.
func waitKernelCount(b *testing.B, protocol netlink.RouteProtocol, want int, timeout time.Duration) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	filter := &netlink.Route{Protocol: protocol}
	for {
		routes, err := netlink.RouteListFiltered(unix.AF_INET, filter, netlink.RT_FILTER_PROTOCOL)
		if err == nil && len(routes) == want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("kernel has %d routes of protocol %d after %s, want %d (%v)", len(routes), protocol, timeout, want, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ipBatchBaseline installs the same routes with one `ip -batch`, removes
// them, and returns how long the install took.
func ipBatchBaseline(b *testing.B, gateway string) time.Duration {
	b.Helper()
	var batch strings.Builder
	for i := range importBenchRoutes {
		fmt.Fprintf(&batch, "route add %s via %s proto %d metric %d\n", importBenchPrefix(i), gateway, baselineProtocol, fib.Metric)
	}
	path := filepath.Join(b.TempDir(), "routes.batch")
	if err := os.WriteFile(path, []byte(batch.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if out, err := exec.Command("ip", "-batch", path).CombinedOutput(); err != nil {
		b.Fatalf("ip -batch: %v: %s", err, out)
	}
	took := time.Since(start)
	testnet.Host.Exec(b, "ip", "route", "flush", "proto", fmt.Sprint(baselineProtocol))
	return took
}
