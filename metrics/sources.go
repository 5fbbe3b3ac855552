package metrics

import (
	"context"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp"
)

// shortID is the 12-character form of a Docker ID the docker CLI shows, so
// label values can be pasted into `docker network inspect`.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func (c *collector) collectNetworks(ch chan<- prometheus.Metric) {
	networks := c.src.Driver.Networks()
	announced := map[string]int{}
	subnet := map[string]bool{}
	type joinCount struct{ joined, waiting int }
	endpoints := map[string]*joinCount{}
	for _, n := range networks {
		announced[n.ID] = len(n.Announced)
		subnet[n.ID] = n.Announce == "subnet"
		endpoints[n.ID] = &joinCount{}
	}
	for _, ep := range c.src.Driver.Endpoints() {
		count, ok := endpoints[ep.NetworkID]
		if !ok {
			continue
		}
		if ep.Joined {
			count.joined++
		} else {
			count.waiting++
		}
		// An endpoint reached through the subnet shows the network's
		// routes, already counted.
		if !ep.Fallback && !subnet[ep.NetworkID] {
			announced[ep.NetworkID] += len(ep.Announced)
		}
	}
	for _, n := range networks {
		id := shortID(n.ID)
		gauge(ch, descAnnounced, float64(announced[n.ID]), id)
		gauge(ch, descEndpoints, float64(endpoints[n.ID].joined), id, "true")
		gauge(ch, descEndpoints, float64(endpoints[n.ID].waiting), id, "false")
	}
	budget := c.src.Driver.RouteBudget()
	gauge(ch, descBudgetLimit, float64(budget.Limit))
	gauge(ch, descBudgetUsed, float64(budget.Used))
	counter(ch, descBudgetRefused, float64(budget.Refused))
	counter(ch, descBudgetFellBack, float64(budget.FellBack))
}

func (c *collector) collectTraffic(ctx context.Context, ch chan<- prometheus.Metric) error {
	traffic, err := c.src.Driver.Traffic(ctx)
	for _, t := range traffic {
		labels := []string{shortID(t.Network), shortID(t.Endpoint), t.Sandbox}
		counter(ch, descRxBytes, float64(t.RxBytes), labels...)
		counter(ch, descRxPackets, float64(t.RxPackets), labels...)
		counter(ch, descTxBytes, float64(t.TxBytes), labels...)
		counter(ch, descTxPackets, float64(t.TxPackets), labels...)
	}
	return err
}

func (c *collector) collectPools(ctx context.Context, ch chan<- prometheus.Metric) error {
	pools, err := c.src.IPAM.Pools(ctx)
	for _, p := range pools {
		gauge(ch, descPoolFree, float64(p.Free), p.Pool.String(), p.Range.String())
		gauge(ch, descPoolAllocated, float64(p.Allocated), p.Pool.String(), p.Range.String())
	}
	return err
}

func (c *collector) collectSpeaker(ctx context.Context, ch chan<- prometheus.Metric) error {
	st, err := c.src.Speaker.Status(ctx)
	gauge(ch, descSpeakerUp, boolValue(st.Running))
	gauge(ch, descLocalPrefixes, float64(st.Announced))
	for _, p := range st.Peers {
		gauge(ch, descPeerUp, boolValue(p.State == "established"), p.Address, p.Interface, strconv.FormatUint(uint64(p.RemoteAS), 10))
		for _, state := range sessionStates {
			gauge(ch, descPeerState, boolValue(p.State == state), p.Address, state)
		}
		gauge(ch, descPeerUptime, p.Uptime.Seconds(), p.Address)
		gauge(ch, descPeerReceived, float64(p.Received), p.Address)
		gauge(ch, descPeerAccepted, float64(p.Accepted), p.Address)
		gauge(ch, descPeerAdvert, float64(p.Advertised), p.Address)
		if p.BFD != "" {
			for _, state := range bgp.BFDStates {
				gauge(ch, descPeerBFD, boolValue(p.BFD == state), p.Address, state)
			}
		}
	}
	return err
}

func (c *collector) collectKernel(ch chan<- prometheus.Metric) {
	families := map[string]int{"ipv4": 0, "ipv6": 0}
	for _, r := range c.src.Kernel.Routes() {
		if r.Prefix.Addr().Is4() {
			families["ipv4"]++
		} else {
			families["ipv6"]++
		}
	}
	for family, n := range families {
		gauge(ch, descKernelRoutes, float64(n), family)
	}
}
