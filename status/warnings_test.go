package status

import (
	"bytes"
	"strings"
	"testing"
)

// TestWarnings: a network that announces routes from a pool this host
// allocates from in full gets a warning naming IPAM_LOCAL_RANGES; one with
// a local range, or internal (announce none), does not. The speaker's
// warnings come first, and Render prints them all under WARNINGS.
func TestWarnings(t *testing.T) {
	doc := Document{
		Networks: []Network{
			{ID: "aaaaaaaaaaaaaaaa", Announce: "host", Subnets: []string{"10.244.0.0/16", "fd00:244::/48"}},
			{ID: "bbbbbbbbbbbbbbbb", Announce: "subnet", Subnets: []string{"10.245.0.0/16"}},
			{ID: "cccccccccccccccc", Announce: "none", Subnets: []string{"10.246.0.0/24"}},
		},
		Pools: []Pool{
			{Pool: "10.244.0.0/16", Range: "10.244.1.0/24"},
			{Pool: "fd00:244::/48", Range: "fd00:244::/48"},
			{Pool: "10.245.0.0/16", Range: "10.245.0.0/16"},
			{Pool: "10.246.0.0/24", Range: "10.246.0.0/24"},
		},
	}
	doc.addWarnings([]string{"from the speaker"})
	if len(doc.Warnings) != 3 || doc.Warnings[0] != "from the speaker" {
		t.Fatalf("warnings = %q; want the speaker's, then fd00:244::/48's and 10.245.0.0/16's", doc.Warnings)
	}
	for i, want := range []string{
		"network aaaaaaaaaaaa: pool fd00:244::/48 has no local range on this host",
		"network bbbbbbbbbbbb: pool 10.245.0.0/16 has no local range on this host, so it allocates from the whole pool: a second host with this subnet hands out the same addresses, and announces the whole pool",
	} {
		if w := doc.Warnings[i+1]; !strings.HasPrefix(w, want) || !strings.Contains(w, "set IPAM_LOCAL_RANGES") {
			t.Errorf("warning %d = %q; want it to start %q and name IPAM_LOCAL_RANGES", i+1, w, want)
		}
	}
	var out bytes.Buffer
	if err := Render(&out, doc); err != nil || !strings.Contains(out.String(), "\nWARNINGS\nfrom the speaker\nnetwork aaaaaaaaaaaa") {
		t.Fatalf("Render = %v:\n%s\nwant a WARNINGS section", err, out.String())
	}
}
