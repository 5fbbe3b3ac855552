package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp"
	"github.com/ipvlan-bgp/ipvlan-bgp/driver"
	"github.com/ipvlan-bgp/ipvlan-bgp/fib"
	"github.com/ipvlan-bgp/ipvlan-bgp/ipam"
)

// Sources are the parts of the plugin the collector reads at scrape time.
// A nil source's metrics are left out.
type Sources struct {
	Driver  Driver
	IPAM    Pools
	Speaker Speaker
	Kernel  Kernel
}

// Driver is the network driver's read-only side (*driver.Driver).
type Driver interface {
	Networks() []driver.Network
	Endpoints() []driver.Endpoint
	RouteBudget() driver.BudgetStatus
	Traffic(ctx context.Context) ([]driver.EndpointTraffic, error)
}

// Pools is the IPAM driver's read-only side (*ipam.IPAM).
type Pools interface {
	Pools(ctx context.Context) ([]ipam.PoolUsage, error)
}

// Speaker is the BGP speaker's read-only side (*bgp.Speaker).
type Speaker interface {
	Status(ctx context.Context) (bgp.Status, error)
}

// Kernel is the table of routes learned from peers (*fib.Table).
type Kernel interface {
	Routes() []fib.Route
}

// scrapeTimeout bounds the slow reads of one scrape (BGP peer list,
// netlink), below Prometheus' default scrape timeout of 10 s.
const scrapeTimeout = 5 * time.Second

// sessionStates are the values of the state label of
// ipvlan_bgp_peer_session_state, one series each (a Prometheus state set).
var sessionStates = []string{"idle", "connect", "active", "opensent", "openconfirm", "established"}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

var (
	descSpeakerUp     = desc("bgp_speaker_up", "1 when the embedded BGP speaker runs.")
	descLocalPrefixes = desc("bgp_local_prefixes", "Prefixes this host originates in the speaker's RIB (after BGP_EXPORT_ALLOW).")
	descPeerUp        = desc("peer_up", "1 when the BGP session with the peer is established.", "peer", "interface", "remote_as")
	descPeerState     = desc("peer_session_state", "The BGP session's FSM state: 1 for the current state, 0 for the others.", "peer", "state")
	descPeerUptime    = desc("peer_uptime_seconds", "How long the BGP session has been established; 0 when it is not.", "peer")
	descPeerReceived  = desc("peer_prefixes_received", "Prefixes received from the peer, all families.", "peer")
	descPeerAccepted  = desc("peer_prefixes_accepted", "Prefixes received from the peer and accepted by the import policy.", "peer")
	descPeerAdvert    = desc("peer_prefixes_advertised", "Prefixes advertised to the peer.", "peer")
	descPeerBFD       = desc("peer_bfd_state", "The state of the session's BFD, for peers with BFD on: 1 for the current state, 0 for the others.", "peer", "state")

	descAnnounced      = desc("announced_routes", "Routes this host announces for the network: host routes of running containers, or its subnet.", "network")
	descEndpoints      = desc("endpoints", "Endpoints (containers) on the network, by whether they joined.", "network", "joined")
	descKernelRoutes   = desc("kernel_routes", "Routes learned over BGP and installed in the kernel (protocol 201).", "family")
	descPoolFree       = desc("pool_addresses_free", "Addresses still free in this host's allocation range of the pool.", "pool", "range")
	descPoolAllocated  = desc("pool_addresses_allocated", "Addresses allocated in this host's allocation range of the pool, the gateway included when inside.", "pool", "range")
	descBudgetLimit    = desc("route_budget_routes", "ROUTE_BUDGET: the most routes this host announces; 0 is no limit.")
	descBudgetUsed     = desc("route_budget_used_routes", "Routes counted against ROUTE_BUDGET: announced, or reserved by endpoints about to start.")
	descBudgetRefused  = desc("route_budget_refusals_total", "Endpoints refused because the route budget was reached.")
	descBudgetFellBack = desc("route_budget_fallbacks_total", "Endpoints past the route budget announced through their network's subnet instead.")

	trafficLabels  = []string{"network", "endpoint", "sandbox"}
	descRxBytes    = desc("endpoint_receive_bytes_total", "Bytes received by the container on its ipvlan interface.", trafficLabels...)
	descRxPackets  = desc("endpoint_receive_packets_total", "Packets received by the container on its ipvlan interface.", trafficLabels...)
	descTxBytes    = desc("endpoint_transmit_bytes_total", "Bytes sent by the container on its ipvlan interface.", trafficLabels...)
	descTxPackets  = desc("endpoint_transmit_packets_total", "Packets sent by the container on its ipvlan interface.", trafficLabels...)
	descScrapeFail = desc("scrape_source_errors", "1 when a source could not be read during this scrape; its metrics are missing.", "source")
)

// collector reads the sources at every scrape.
type collector struct {
	src Sources
	log *logrus.Entry
}

func newCollector(src Sources, log *logrus.Entry) *collector { return &collector{src: src, log: log} }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descSpeakerUp, descLocalPrefixes, descPeerUp, descPeerState, descPeerUptime, descPeerReceived, descPeerAccepted, descPeerAdvert, descPeerBFD,
		descAnnounced, descEndpoints, descKernelRoutes, descPoolFree, descPoolAllocated,
		descBudgetLimit, descBudgetUsed, descBudgetRefused, descBudgetFellBack,
		descRxBytes, descRxPackets, descTxBytes, descTxPackets, descScrapeFail,
	} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if c.src.Driver != nil {
		c.collectNetworks(ch)
		c.report(ch, "traffic", c.collectTraffic(ctx, ch))
	}
	if c.src.IPAM != nil {
		c.report(ch, "ipam", c.collectPools(ctx, ch))
	}
	if c.src.Speaker != nil {
		c.report(ch, "bgp", c.collectSpeaker(ctx, ch))
	}
	if c.src.Kernel != nil {
		c.collectKernel(ch)
	}
}

// report turns a source's failure into a logged warning and a series
// saying its metrics are missing, rather than failing the whole scrape.
func (c *collector) report(ch chan<- prometheus.Metric, source string, err error) {
	failed := 0.0
	if err != nil {
		failed = 1
		c.log.WithField("source", source).WithError(err).Warn("metrics: cannot read source")
	}
	gauge(ch, descScrapeFail, failed, source)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
