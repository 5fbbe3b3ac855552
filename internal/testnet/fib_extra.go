package testnet

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

// kernelRoute is one entry of `ip -j route show`.
type kernelRoute struct {
	Dst      string      `json:"dst"`
	Metric   int         `json:"metric"`
	Nexthops []kernelHop `json:"nexthops"`
	kernelHop
}

type kernelHop struct {
	Gateway string `json:"gateway"`
	Via     *struct {
		Family string `json:"family"`
		Host   string `json:"host"`
	} `json:"via"`
	Dev string `json:"dev"`
}

// String writes a next hop as `ip route` does: "via 192.0.2.1 dev eth0",
// "via inet6 fe80::1 dev eth0" (RFC 8950), or "dev eth0".
func (h kernelHop) String() string {
	switch {
	case h.Via != nil:
		return fmt.Sprintf("via %s %s dev %s", h.Via.Family, h.Via.Host, h.Dev)
	case h.Gateway != "":
		return fmt.Sprintf("via %s dev %s", h.Gateway, h.Dev)
	}
	return "dev " + h.Dev
}

// KernelRoutes returns the namespace's IPv4 and IPv6 routes of a route
// protocol in the main table, as destination → next hops (sorted,
// `ip route` wording). A destination installed at several metrics appears
// once per metric, keyed "dst metric N".
func (n *NS) KernelRoutes(t testing.TB, protocol int) map[string][]string {
	t.Helper()
	routes := make(map[string][]string)
	for _, family := range []string{"-4", "-6"} {
		var list []kernelRoute
		out := n.Exec(t, "ip", "-j", family, "route", "show", "proto", fmt.Sprint(protocol))
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("decode ip -j route output: %v\n%s", err, out)
		}
		for _, r := range list {
			hops := r.Nexthops
			if len(hops) == 0 {
				hops = []kernelHop{r.kernelHop}
			}
			key := r.Dst
			if _, dup := routes[key]; dup {
				key = fmt.Sprintf("%s metric %d", r.Dst, r.Metric)
			}
			for _, h := range hops {
				routes[key] = append(routes[key], h.String())
			}
			slices.Sort(routes[key])
		}
	}
	return routes
}
