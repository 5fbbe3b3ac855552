package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

// benchFabric is one peer namespace reached over two links: the plugin's
// Speaker peers on the first, a bare GoBGP server (the baseline) on the
// second, so both are measured against the same peer in the same run.
type benchFabric struct {
	ns      *testnet.NS
	speaker *Speaker
	raw     *server.BgpServer
	frr     *testnet.FRR // nil when the peer is BIRD
	routes  routeEvents  // the peer kernel's route changes
}

func newBenchFabric(b *testing.B, peer string) *benchFabric {
	b.Helper()
	testnet.RequireRoot(b)
	ns := testnet.NewNS(b, "bench")
	for i, sub := range []string{"10.0.20", "10.0.21"} {
		hostIf, peerIf := fmt.Sprintf("bh%d", i), fmt.Sprintf("bp%d", i)
		testnet.Veth(b, testnet.Host, hostIf, ns, peerIf)
		testnet.Host.AddAddr(b, hostIf, sub+".1/30")
		ns.AddAddr(b, peerIf, sub+".2/30")
	}
	f := &benchFabric{ns: ns, routes: watchRoutes(b, ns)}
	f.startPeer(b, peer)
	cfg := testConfig(numbered("10.0.20.2", 65020))
	f.speaker = NewSpeaker(cfg, Options{Log: quietLog()})
	if err := f.speaker.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.speaker.Stop(context.Background(), false) })
	f.raw = startRawGoBGP(b, "10.0.21.2")
	return f
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetLevel(logrus.ErrorLevel)
	return logrus.NewEntry(l)
}

func (f *benchFabric) startPeer(b *testing.B, peer string) {
	if peer == "bird" {
		testnet.StartBIRD(b, f.ns, `
router id 10.0.20.2;
protocol device {}
protocol kernel { ipv4 { export all; }; merge paths on; }
protocol bgp speaker { local 10.0.20.2 as 65020; neighbor 10.0.20.1 as 64512; ipv4 { import all; export none; }; }
protocol bgp raw { local 10.0.21.2 as 65020; neighbor 10.0.21.1 as 64513; ipv4 { import all; export none; }; }
`)
		return
	}
	f.frr = testnet.StartFRR(b, f.ns, frrLeaf(65020, "10.0.20.2", ` neighbor 10.0.20.1 remote-as 64512
 neighbor 10.0.21.1 remote-as 64513`))
}

// startRawGoBGP is the baseline: GoBGP with no plugin code around it.
func startRawGoBGP(b *testing.B, peer string) *server.BgpServer {
	s := server.NewBgpServer() // logging nowhere
	go s.Serve()
	ctx := context.Background()
	global := &api.Global{Asn: 64513, RouterId: "192.0.2.251", ListenPort: -1}
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Stop)
	p := &api.Peer{Conf: &api.PeerConf{NeighborAddress: peer, PeerAsn: 65020},
		Timers: &api.Timers{Config: &api.TimersConfig{ConnectRetry: connectRetry}}}
	if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
		b.Fatal(err)
	}
	return s
}

// waitKernel waits for prefix to be added (or deleted) in the peer's kernel.
func (f *benchFabric) waitKernel(b *testing.B, prefix netip.Prefix, added bool) {
	f.routes.wait(b, prefix, added, 30*time.Second)
}

// cycle measures one announce and one withdraw to the peer's kernel.
func (f *benchFabric) cycle(b *testing.B, p netip.Prefix, announce, withdraw func()) (time.Duration, time.Duration) {
	start := time.Now()
	announce()
	f.waitKernel(b, p, true)
	added := time.Since(start)
	start = time.Now()
	withdraw()
	f.waitKernel(b, p, false)
	return added, time.Since(start)
}

func benchPrefix(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 30, byte(i >> 8), byte(i)}), 32)
}

// BenchmarkAnnounceLatency measures announce and withdraw latency to a
// peer's kernel through the Speaker and, as the baseline, through a bare
// GoBGP server, against the same peer in the same run. Run with
// -benchtime=200x for a meaningful p99.
func BenchmarkAnnounceLatency(b *testing.B) {
	for _, peer := range []string{"bird", "frr"} {
		b.Run(peer, func(b *testing.B) { benchLatency(b, peer) })
	}
}

func benchLatency(b *testing.B, peer string) {
	f := newBenchFabric(b, peer)
	f.waitSessions(b)
	var sp, raw latencies
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := benchPrefix(2 * i)
		sp.add(f.cycle(b, p,
			func() { f.speaker.Set("bench", []route.Advert{{Prefix: p}}) },
			func() { f.speaker.Set("bench", nil) }))
		p = benchPrefix(2*i + 1)
		var id uuid.UUID
		raw.add(f.cycle(b, p,
			func() { id = rawAdd(b, f.raw, p) },
			func() { rawDelete(b, f.raw, id) }))
	}
	b.StopTimer()
	sp.report(b, "speaker")
	raw.report(b, "gobgp")
	b.ReportMetric(ms(sp.median(sp.announce)-raw.median(raw.announce)), "added-announce-p50-ms")
	b.Logf("%s: speaker announce p50 %s p99 %s, withdraw p50 %s p99 %s; bare GoBGP announce p50 %s p99 %s, withdraw p50 %s p99 %s (n=%d)",
		peer, sp.median(sp.announce), sp.p99(sp.announce), sp.median(sp.withdraw), sp.p99(sp.withdraw),
		raw.median(raw.announce), raw.p99(raw.announce), raw.median(raw.withdraw), raw.p99(raw.withdraw), b.N)
}

func rawAdd(b *testing.B, s *server.BgpServer, p netip.Prefix) uuid.UUID {
	path, err := buildPath(p, pathAttrs{})
	if err != nil {
		b.Fatal(err)
	}
	resp, err := s.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
	if err != nil {
		b.Fatal(err)
	}
	return resp[0].UUID
}

func rawDelete(b *testing.B, s *server.BgpServer, id uuid.UUID) {
	if err := s.DeletePath(apiutil.DeletePathRequest{UUIDs: []uuid.UUID{id}}); err != nil {
		b.Fatal(err)
	}
}

// rawWithdraw deletes by path: by UUID, 10k deletes take minutes.
func rawWithdraw(b *testing.B, s *server.BgpServer, p netip.Prefix) {
	path, err := buildPath(p, pathAttrs{})
	if err == nil {
		err = s.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}})
	}
	if err != nil {
		b.Fatal(err)
	}
}

// waitSessions waits until both speakers' sessions are up.
func (f *benchFabric) waitSessions(b *testing.B) {
	for _, s := range []*server.BgpServer{f.speaker.server, f.raw} {
		testnet.WaitFor(b, 60*time.Second, "benchmark session", func() (bool, string) {
			up := false
			_ = s.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
				up = p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED
			})
			return up, "not established"
		})
	}
}

type latencies struct{ announce, withdraw []time.Duration }

func (l *latencies) add(announce, withdraw time.Duration) {
	l.announce = append(l.announce, announce)
	l.withdraw = append(l.withdraw, withdraw)
}

func (l *latencies) median(d []time.Duration) time.Duration { return percentile(d, 50) }
func (l *latencies) p99(d []time.Duration) time.Duration    { return percentile(d, 99) }

func percentile(d []time.Duration, pct int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*pct/100]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (l *latencies) report(b *testing.B, who string) {
	b.ReportMetric(ms(l.median(l.announce)), who+"-announce-p50-ms")
	b.ReportMetric(ms(l.p99(l.announce)), who+"-announce-p99-ms")
	b.ReportMetric(ms(l.median(l.withdraw)), who+"-withdraw-p50-ms")
	b.ReportMetric(ms(l.p99(l.withdraw)), who+"-withdraw-p99-ms")
}

// BenchmarkSet10k measures how fast 10,000 adverts Set (one per endpoint)
// reach FRR's RIB, beside the same 10,000 AddPath calls on bare GoBGP.
func BenchmarkSet10k(b *testing.B) {
	const n = 10000
	f := newBenchFabric(b, "frr")
	f.waitSessions(b)
	var speakerRate, rawRate float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		speakerRate = rate(b, f.frr, "10.0.20.1", n, func() {
			for j := 0; j < n; j++ {
				f.speaker.Set(fmt.Sprintf("ep%d", j), []route.Advert{{Prefix: benchPrefix(j)}})
			}
		})
		for j := 0; j < n; j++ {
			f.speaker.Set(fmt.Sprintf("ep%d", j), nil)
		}
		waitPrefixCount(b, f.frr, "10.0.20.1", 0)
		rawRate = rate(b, f.frr, "10.0.21.1", n, func() {
			for j := 0; j < n; j++ {
				rawAdd(b, f.raw, benchPrefix(j))
			}
		})
		for j := 0; j < n; j++ {
			rawWithdraw(b, f.raw, benchPrefix(j))
		}
		waitPrefixCount(b, f.frr, "10.0.21.1", 0)
	}
	b.StopTimer()
	b.ReportMetric(speakerRate, "speaker-routes/s")
	b.ReportMetric(rawRate, "gobgp-routes/s")
	b.Logf("10,000 adverts to FRR's RIB: speaker %.0f routes/s, bare GoBGP %.0f routes/s", speakerRate, rawRate)
}

// rate runs load and returns routes per second until FRR's RIB holds n
// prefixes from neighbor.
func rate(b *testing.B, frr *testnet.FRR, neighbor string, n int, load func()) float64 {
	start := time.Now()
	load()
	waitPrefixCount(b, frr, neighbor, n)
	return float64(n) / time.Since(start).Seconds()
}

func waitPrefixCount(b *testing.B, frr *testnet.FRR, neighbor string, n int) {
	testnet.WaitFor(b, 120*time.Second, fmt.Sprintf("%d prefixes from %s in FRR's RIB", n, neighbor), func() (bool, string) {
		var summary struct {
			IPv4Unicast struct {
				Peers map[string]struct{ PfxRcd int }
			} `json:"ipv4Unicast"`
		}
		frr.JSON(b, "show bgp summary json", &summary)
		got := summary.IPv4Unicast.Peers[neighbor].PfxRcd
		return got == n, fmt.Sprint(got)
	})
}
