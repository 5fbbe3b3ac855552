package bgp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
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

// BenchmarkImport100k measures the time from adding the BGP peer until
// 100,000 routes a BIRD leaf announces are all in the kernel through GoBGP,
// the importer and fib, and the part of it after the session came up; and,
// in the same run, the same routes written by `ip -batch` (the baseline).
// Run with -benchtime=1x: one iteration is a whole session.
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
		established := watchEstablished(b, f.s)
		start := time.Now()
		f.addPeer(leaf, 65101)
		waitFor(b, "the importer to want every route", func() (bool, int) {
			n := f.table.Len()
			return n == importBenchRoutes, n
		})
		waitFor(b, "every route in the kernel", func() (bool, int) {
			n := countKernelRoutes(b, fib.Protocol)
			return n == importBenchRoutes, n
		})
		done := time.Now()
		imported, afterUp := done.Sub(start), done.Sub(established())
		if err := f.s.DeletePeer(context.Background(), &api.DeletePeerRequest{Address: leaf}); err != nil {
			b.Fatal(err)
		}
		waitFor(b, "the routes gone from the kernel", func() (bool, int) {
			n := countKernelRoutes(b, fib.Protocol)
			return n == 0, n
		})

		baseline := ipBatchBaseline(b, leaf)
		b.ReportMetric(imported.Seconds(), "s/import")
		b.ReportMetric(afterUp.Seconds(), "s/import-after-up")
		b.ReportMetric(baseline.Seconds(), "s/ip-batch")
		b.Logf("%d routes: peer added → kernel %.2fs (%.0f routes/s), of which after the session came up %.2fs; baseline ip -batch %.2fs (%.0f routes/s)",
			importBenchRoutes, imported.Seconds(), importBenchRoutes/imported.Seconds(), afterUp.Seconds(),
			baseline.Seconds(), importBenchRoutes/baseline.Seconds())
	}
}

// watchEstablished returns when a session of s came up, once it has.
func watchEstablished(b *testing.B, s *server.BgpServer) func() time.Time {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	up := make(chan time.Time, 1)
	err := s.WatchEvent(ctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, func(r *api.WatchEventResponse) {
		if r.GetPeer().GetPeer().GetState().GetSessionState() == api.PeerState_ESTABLISHED {
			select {
			case up <- time.Now():
			default:
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	return func() time.Time {
		defer cancel()
		select {
		case t := <-up:
			return t
		case <-time.After(time.Second):
			b.Fatal("no session came up")
			return time.Time{}
		}
	}
}

// waitFor polls cond every 10 ms for a minute; n is what it counted.
func waitFor(b *testing.B, what string, cond func() (bool, int)) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, n := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s: %d", what, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// countKernelRoutes counts this namespace's IPv4 routes of protocol by
// their headers alone: decoding 100,000 routes would slow the very import
// being timed.
func countKernelRoutes(b *testing.B, protocol netlink.RouteProtocol) int {
	b.Helper()
	for {
		req := nl.NewNetlinkRequest(unix.RTM_GETROUTE, unix.NLM_F_DUMP)
		req.AddData(&nl.RtMsg{RtMsg: unix.RtMsg{Family: unix.AF_INET}})
		n := 0
		err := req.ExecuteIter(unix.NETLINK_ROUTE, unix.RTM_NEWROUTE, func(msg []byte) bool {
			if len(msg) >= unix.SizeofRtMsg && msg[5] == byte(protocol) { // rtm_protocol
				n++
			}
			return true
		})
		if errors.Is(err, nl.ErrDumpInterrupted) {
			continue // the table changed during the dump
		}
		if err != nil {
			b.Fatal(err)
		}
		return n
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
