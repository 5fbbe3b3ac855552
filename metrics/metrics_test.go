package metrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	netapi "github.com/docker/go-plugins-helpers/network"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/api"
	"github.com/ipvlan-bgp/ipvlan-bgp/driver"
	"github.com/ipvlan-bgp/ipvlan-bgp/fib"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/dockertest"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/observe"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
	"github.com/ipvlan-bgp/ipvlan-bgp/ipam"
	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

func TestMain(m *testing.M) { testnet.Main(m) }

// announcer stands in for the BGP speaker, which this package's metrics of
// it read through Status (tested end to end in package plugin).
// plugin is the driver, IPAM driver and kernel table behind one API server,
// as the plugin's main wires them, in the test's namespace.
type plugin struct {
	api     *api.Server
	docker  *dockertest.Docker // Docker's calls, sent to api's handler
	metrics *Metrics
	kernel  *fib.Table
}

// newPlugin wires them with a route budget of budget routes.
func newPlugin(t testing.TB, budget int) *plugin {
	t.Helper()
	testnet.RequireRoot(t)
	testnet.Host.Exec(t, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
	t.Cleanup(func() { testnet.Host.Exec(t, "ip", "link", "del", "eth0") })
	testnet.Host.Exec(t, "ip", "link", "set", "eth0", "up")
	testnet.Host.AddAddr(t, "eth0", "10.50.0.1/24")
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	log := logrus.NewEntry(quiet)
	pools, err := ipam.New(ipam.Config{Store: db, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	d, err := driver.New(driver.Config{Store: db, Announcer: route.Discard{}, Ranges: pools, Log: log, RouteBudget: budget})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	kernel, err := fib.New(fib.Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kernel.Close)
	p := &plugin{api: api.NewServer(log), kernel: kernel}
	calls := NewCalls()
	p.api.SetObserver(calls)
	p.metrics = New(observe.Sources{Driver: d, IPAM: pools, Kernel: kernel}, calls, log)
	p.api.Ready(d, pools)
	p.docker = dockertest.InProcess(p.api.Handler())
	return p
}

// network runs what `docker network create --subnet SUBNET -o parent=eth0
// -o announce=ANNOUNCE` sends, and returns the network's pool ID.
func (p *plugin) network(t testing.TB, id, subnet, announce string) string {
	t.Helper()
	return p.docker.CreateNetwork(t, id, subnet, map[string]string{"parent": "eth0", "announce": announce})
}

// endpoint runs what `docker run --net` sends before Join.
func (p *plugin) endpoint(t testing.TB, network, poolID, id string) {
	t.Helper()
	if err := p.docker.CreateEndpoint(t, network, poolID, id); err != nil {
		t.Fatalf("NetworkDriver.CreateEndpoint: %v", err)
	}
}

// scrape serves the metrics on a unix socket, as METRICS_ADDRESS=unix:PATH
// does, and parses one scrape.
func (p *plugin) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	path := filepath.Join(t.TempDir(), "metrics.sock")
	l, err := Listen("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p.metrics.Handler()}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	client := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	resp, err := client.Get("http://metrics/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	// Names, units and help texts follow Prometheus' conventions.
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %+v", err, problems)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return families
}

// value finds the sample of family name whose labels include want.
func value(t *testing.T, families map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	f, ok := families[name]
	if !ok {
		t.Fatalf("scrape has no %s", name)
	}
	for _, m := range f.GetMetric() {
		if hasLabels(m, want) {
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("%s has no sample labelled %v", name, want)
	return 0
}

func hasLabels(m *dto.Metric, want []string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for i := 0; i+1 < len(want); i += 2 {
		if have[want[i]] != want[i+1] {
			return false
		}
	}
	return true
}

func TestScrapeMatchesWhatDockerDid(t *testing.T) {
	p := newPlugin(t, 100)
	hostNet, subnetNet := strings.Repeat("a", 64), strings.Repeat("b", 64)
	hostPool := p.network(t, hostNet, "10.10.0.0/24", "host")
	subnetPool := p.network(t, subnetNet, "10.20.0.0/24", "subnet")
	for i := range 3 {
		p.endpoint(t, hostNet, hostPool, fmt.Sprintf("%d%s", i, strings.Repeat("e", 63)))
	}
	for i := range 2 {
		p.endpoint(t, subnetNet, subnetPool, fmt.Sprintf("%d%s", i, strings.Repeat("f", 63)))
	}
	err := p.docker.Call("NetworkDriver.CreateEndpoint", netapi.CreateEndpointRequest{NetworkID: "unknown", EndpointID: strings.Repeat("9", 64)}, nil)
	if err == nil {
		t.Fatal("CreateEndpoint on an unknown network succeeded")
	}
	nexthop := []fib.Nexthop{{Addr: netip.MustParseAddr("10.50.0.2")}}
	route := fib.Route{Prefix: netip.MustParsePrefix("10.99.0.0/24"), Nexthops: nexthop}
	if refused, err := p.kernel.ReplaceBatch(context.Background(), []fib.Route{route}); err != nil || len(refused) > 0 {
		t.Fatalf("ReplaceBatch: %v, refused %v", err, refused)
	}

	m := p.scrape(t)
	hostID, subnetID := hostNet[:12], subnetNet[:12]
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"ipvlan_bgp_endpoints", []string{"network", hostID, "joined", "false"}, 3},
		{"ipvlan_bgp_endpoints", []string{"network", hostID, "joined", "true"}, 0},
		{"ipvlan_bgp_endpoints", []string{"network", subnetID, "joined", "false"}, 2},
		// Nothing joined: the host network announces nothing yet, the
		// subnet network its subnet.
		{"ipvlan_bgp_announced_routes", []string{"network", hostID}, 0},
		{"ipvlan_bgp_announced_routes", []string{"network", subnetID}, 1},
		// Three host routes reserved and one subnet.
		{"ipvlan_bgp_route_budget_used_routes", nil, 4},
		{"ipvlan_bgp_route_budget_routes", nil, 100},
		{"ipvlan_bgp_route_budget_refusals_total", nil, 0},
		// 254 usable; the gateway and three containers hold four.
		{"ipvlan_bgp_pool_addresses_allocated", []string{"pool", "10.10.0.0/24"}, 4},
		{"ipvlan_bgp_pool_addresses_free", []string{"pool", "10.10.0.0/24"}, 250},
		{"ipvlan_bgp_pool_addresses_free", []string{"pool", "10.20.0.0/24"}, 251},
		{"ipvlan_bgp_kernel_routes", []string{"family", "ipv4"}, 1},
		{"ipvlan_bgp_kernel_routes", []string{"family", "ipv6"}, 0},
		{"ipvlan_bgp_docker_call_duration_seconds", []string{"method", "NetworkDriver.CreateEndpoint"}, 6},
		{"ipvlan_bgp_docker_call_duration_seconds", []string{"method", "NetworkDriver.CreateNetwork"}, 2},
		// One address per container and one gateway per network: the
		// pool's answer names none, as Docker before 28 then asks.
		{"ipvlan_bgp_docker_call_duration_seconds", []string{"method", "IpamDriver.RequestAddress"}, 7},
		{"ipvlan_bgp_docker_call_errors_total", []string{"method", "NetworkDriver.CreateEndpoint"}, 1},
		{"ipvlan_bgp_errors_total", []string{"source", "store"}, 0},
		{"ipvlan_bgp_scrape_source_errors", []string{"source", "ipam"}, 0},
	} {
		if got := value(t, m, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, ok := m["ipvlan_bgp_peer_up"]; ok {
		t.Error("peer metrics without a speaker")
	}
}
