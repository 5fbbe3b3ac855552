package testnet

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

// TestFRRPeersWithBIRD proves the helpers build a working fabric: an FRR
// leaf and a BIRD leaf in two namespaces reach Established and FRR installs
// the route BIRD announces into its namespace's kernel.
func TestFRRPeersWithBIRD(t *testing.T) {
	frrNS, birdNS := NewNS(t, "frr"), NewNS(t, "bird")
	Veth(t, frrNS, "to-bird", birdNS, "to-frr")
	frrNS.AddAddr(t, "to-bird", "192.0.2.1/30")
	birdNS.AddAddr(t, "to-frr", "192.0.2.2/30")

	frr := StartFRR(t, frrNS, `
router bgp 65101
 no bgp ebgp-requires-policy
 bgp router-id 192.0.2.1
 neighbor 192.0.2.2 remote-as 65102
`)
	StartBIRD(t, birdNS, `
router id 192.0.2.2;
protocol device {}
protocol static { ipv4; route 198.51.100.0/24 blackhole; }
protocol bgp leaf {
  local 192.0.2.2 as 65102;
  neighbor 192.0.2.1 as 65101;
  ipv4 { import all; export all; };
}
`)
	WaitFor(t, 30*time.Second, "the FRR-BIRD session and route", func() (bool, string) {
		out, err := frrNS.Try("ip", "route", "show", "198.51.100.0/24")
		return err == nil && strings.Contains(out, "via 192.0.2.2"), out
	})
	var summary struct {
		IPv4Unicast struct {
			Peers map[string]struct{ State string }
		} `json:"ipv4Unicast"`
	}
	frr.JSON(t, "show bgp summary json", &summary)
	if got := summary.IPv4Unicast.Peers["192.0.2.2"].State; got != "Established" {
		raw, _ := json.Marshal(summary)
		t.Fatalf("FRR's session to BIRD is %q, want Established: %s", got, raw)
	}
}
