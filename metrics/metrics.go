// Package metrics serves the plugin's Prometheus metrics. Most are read
// from the driver, the IPAM driver, the BGP speaker and the kernel route
// table at scrape time (collector.go), so there is no second copy of the
// state to drift; Docker calls and errors are counted as they happen
// (calls.go).
//
// The address is the operator's: "unix:/state/metrics.sock" for a unix
// socket, or a TCP address such as "127.0.0.1:9475".
package metrics

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/logs"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/observe"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/unixsock"
)

// namespace prefixes every metric name.
const namespace = "ipvlan_bgp"

// Metrics is the plugin's registry: the state collector, the call
// observer and the Go runtime's own metrics.
type Metrics struct {
	registry *prometheus.Registry
	log      *logrus.Entry
}

// New builds the registry over sources and calls, which the plugin makes
// first (NewCalls) so that the API server counts calls from its first one,
// before the sources exist. A nil source's metrics are left out (BGP off:
// no peer metrics).
func New(sources observe.Sources, calls *Calls, log *logrus.Entry) *Metrics {
	log = logs.For(log, "metrics")
	m := &Metrics{registry: prometheus.NewRegistry(), log: log}
	m.registry.MustRegister(
		newCollector(sources, log),
		calls,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the metrics in the Prometheus text format (the plugin
// mounts it at /metrics). A source that
// fails leaves its metrics out and is logged; the rest are still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      promLogger{m.log},
	})
}

type promLogger struct{ log *logrus.Entry }

func (l promLogger) Println(v ...any) { l.log.Warn(fmt.Sprint(v...)) }

// Listen opens address: "unix:PATH" (a root-only socket; a stale one is
// replaced, any other file refused) or HOST:PORT.
func Listen(address string) (net.Listener, error) {
	path, isUnix := strings.CutPrefix(address, "unix:")
	if !isUnix {
		l, err := net.Listen("tcp", address)
		if err != nil {
			return nil, fmt.Errorf("metrics: listen on %s: %w", address, err)
		}
		return l, nil
	}
	l, err := unixsock.Listen(path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return l, nil
}
