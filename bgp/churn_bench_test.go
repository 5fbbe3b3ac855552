package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipvlan-bgp/ipvlan-bgp/fib"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

// BenchmarkChurnFullTable is containers joining and leaving beside a full
// table. A BIRD leaf holds 100,000 routes for the host (a static protocol
// switched on and off with birdc) and installs the host's announcements in
// its own kernel. The speaker runs as in the plugin, with the importer and
// fib. In one run:
//   - the 100,000 routes into the host's kernel, from switching them on at
//     the leaf, alone, and again while containers join and leave (a /32
//     announced every millisecond, each withdrawn 50 later);
//   - a container's /32 into the leaf's kernel (median of 20), before the
//     table and with it.
//
// Run with -benchtime=1x.
func BenchmarkChurnFullTable(b *testing.B) {
	testnet.RequireRoot(b)
	ns := testnet.NewNS(b, "churn")
	testnet.Veth(b, testnet.Host, "ch0", ns, "cp0")
	testnet.Host.AddAddr(b, "ch0", "10.0.30.1/30")
	ns.AddAddr(b, "cp0", "10.0.30.2/30")
	var conf strings.Builder
	conf.WriteString("router id 10.0.30.2;\nprotocol device {}\n" +
		"protocol kernel { ipv4 { export where source = RTS_BGP; }; }\n" +
		"protocol static fulltable { disabled; ipv4;\n")
	for i := range importBenchRoutes {
		fmt.Fprintf(&conf, "route %s blackhole;\n", importBenchPrefix(i))
	}
	conf.WriteString("}\nprotocol bgp host { local 10.0.30.2 as 65030; neighbor 10.0.30.1 as 64512; connect retry time 1;\n" +
		" ipv4 { import all; export where proto = \"fulltable\"; }; }\n")
	bird := testnet.StartBIRD(b, ns, conf.String())

	table, err := fib.New(fib.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = table.Flush(context.Background()); table.Close() })
	s := NewSpeaker(testConfig(numbered("10.0.30.2", 65030)), Options{Kernel: table, Log: quietLog()})
	if err := s.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Stop(context.Background(), false) })

	announce := func() time.Duration {
		// A watcher of its own: the churn's thousands of changes in the
		// leaf's kernel may have overrun an earlier one's socket.
		leafKernel := watchRoutes(b, ns)
		var took []time.Duration
		for i := range 20 {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 32, 0, byte(i)}), 32)
			start := time.Now()
			s.Set("probe", []route.Advert{{Prefix: p}})
			leafKernel.wait(b, p, true, time.Minute)
			took = append(took, time.Since(start))
			s.Set("probe", nil)
			leafKernel.wait(b, p, false, time.Minute)
		}
		return percentile(took, 50)
	}
	load := func(what string) time.Duration {
		start := time.Now()
		if _, err := bird.Try("enable fulltable"); err != nil {
			b.Fatal(err)
		}
		waitFor(b, what, 10*time.Millisecond, func() (bool, int) {
			n := countKernelRoutes(b, fib.Protocol)
			return n == importBenchRoutes, n
		})
		return time.Since(start)
	}
	unload := func() {
		if _, err := bird.Try("disable fulltable"); err != nil {
			b.Fatal(err)
		}
		waitFor(b, "the table gone", 10*time.Millisecond, func() (bool, int) {
			n := countKernelRoutes(b, fib.Protocol)
			return n == 0, n
		})
	}

	for b.Loop() {
		empty := announce()
		alone := load("100,000 routes, no churn")
		unload()

		var changes atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { churn(s, stop, &changes) })
		churned := load("100,000 routes while containers churn")
		close(stop)
		wg.Wait()
		full := announce()
		unload()

		b.ReportMetric(alone.Seconds(), "s/load")
		b.ReportMetric(churned.Seconds(), "s/load-with-churn")
		b.ReportMetric(float64(changes.Load())/churned.Seconds(), "changes/s")
		b.ReportMetric(ms(empty), "ms/announce-no-table")
		b.ReportMetric(ms(full), "ms/announce-full-table")
		b.Logf("100,000 routes into the kernel: %.2fs alone, %.2fs while %d ownership changes were made (%.0f/s); "+
			"a /32 to the leaf's kernel: %.1f ms without the table, %.1f ms with it (median of 20)",
			alone.Seconds(), churned.Seconds(), changes.Load(), float64(changes.Load())/churned.Seconds(), ms(empty), ms(full))
	}
}

// churn is containers joining and leaving until stop closes: every
// millisecond one container's /32 is announced, and the one announced 50
// before withdrawn; each is an ownership change for the importer.
func churn(s *Speaker, stop <-chan struct{}, changes *atomic.Int64) {
	const live = 50
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	owner := func(i int) string { return fmt.Sprintf("c%d", i%1024) }
	for i := 0; ; i++ {
		select {
		case <-stop:
			for j := max(0, i-live); j < i; j++ {
				s.Set(owner(j), nil)
			}
			return
		case <-tick.C:
		}
		s.Set(owner(i), []route.Advert{{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 31, byte(i >> 8 & 3), byte(i)}), 32)}})
		changes.Add(1)
		if i >= live {
			s.Set(owner(i-live), nil)
			changes.Add(1)
		}
	}
}
