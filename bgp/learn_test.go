package bgp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ipvlan-bgp/ipvlan-bgp/fib"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

// TestSpeakerInstallsLearnedRoutes wires the importer through
// Options.Kernel: a route the leaf sends lands in our kernel, while a route
// we own ourselves is never installed from a peer.
func TestSpeakerInstallsLearnedRoutes(t *testing.T) {
	ns, hostIf, peerIf := link(t, "learn")
	testnet.Host.AddAddr(t, hostIf, "10.0.14.1/30")
	ns.AddAddr(t, peerIf, "10.0.14.2/30")
	testnet.StartFRR(t, ns, frrLeaf(65014, "10.0.14.2", ` neighbor 10.0.14.1 remote-as 64512
 address-family ipv4 unicast
  network 198.51.100.0/24
  network 10.14.0.1/32
 exit-address-family`))
	table, err := fib.New(fib.Config{Log: speakerLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = table.Flush(context.Background()); table.Close() })
	s := NewSpeaker(testConfig(numbered("10.0.14.2", 65014)), Options{Kernel: table, Log: speakerLog(t)})
	s.Set("ep", []route.Advert{advert("10.14.0.1/32")})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background(), false) })
	testnet.WaitFor(t, 30*time.Second, "198.51.100.0/24 in our kernel", func() (bool, string) {
		out := kernelRoute(testnet.Host, "198.51.100.0/24")
		return strings.Contains(out, "via 10.0.14.2"), out
	})
	if out := kernelRoute(testnet.Host, "10.14.0.1"); out != "" {
		t.Errorf("a peer's route for our own prefix reached the kernel: %q", out)
	}

	// A prefix that becomes ours later takes its learned route out of the
	// kernel at once, and gives it back once it is ours no more.
	s.Set("net", []route.Advert{advert("198.51.100.0/23")})
	testnet.WaitFor(t, 10*time.Second, "198.51.100.0/24 gone once 198.51.100.0/23 is ours", func() (bool, string) {
		out := kernelRoute(testnet.Host, "198.51.100.0/24")
		return out == "", out
	})
	s.Set("net", nil)
	testnet.WaitFor(t, 10*time.Second, "198.51.100.0/24 back", func() (bool, string) {
		out := kernelRoute(testnet.Host, "198.51.100.0/24")
		return strings.Contains(out, "via 10.0.14.2"), out
	})
}
