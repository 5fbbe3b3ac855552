package metrics

import (
	"errors"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

// Calls counts Docker's calls and the errors behind them. It implements
// api.Observer.
type Calls struct {
	duration *prometheus.HistogramVec
	failures *prometheus.CounterVec
	errs     *prometheus.CounterVec
}

// Error sources, the values of the source label of ipvlan_bgp_errors_total.
const (
	SourceStore   = "store"
	SourceNetlink = "netlink"
)

// NewCalls makes the counters; install them on the API server with
// SetObserver and hand them to New.
func NewCalls() *Calls {
	c := &Calls{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "docker_call_duration_seconds",
			Help: "Time taken to answer Docker's plugin calls, by method (NetworkDriver.Join, ...).",
			// Calls take from microseconds (EndpointInfo) to tens of
			// milliseconds (Join with netlink); Docker gives up at 30 s.
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"method"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "docker_call_errors_total",
			Help: "Docker plugin calls answered with an error, by method.",
		}, []string{"method"}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "errors_total",
			Help: "Errors from the state store (store) and the kernel (netlink) met while answering Docker or reconciling.",
		}, []string{"source"}),
	}
	for _, source := range []string{SourceStore, SourceNetlink} {
		c.errs.WithLabelValues(source)
	}
	return c
}

// Observe records one answered Docker call.
func (c *Calls) Observe(call string, took time.Duration, err error) {
	c.duration.WithLabelValues(call).Observe(took.Seconds())
	if err != nil {
		c.failures.WithLabelValues(call).Inc()
		c.CountError(err)
	}
}

// CountError counts err under its source when it came from the store or
// the kernel; other errors (bad options, refusals) are the user's and are
// counted only per call.
func (c *Calls) CountError(err error) {
	if source := errorSource(err); source != "" {
		c.errs.WithLabelValues(source).Inc()
	}
}

// errorSource tells where an error came from by what it wraps: the store
// knows its own (store.IsError); a bare errno is the kernel answering a
// netlink request (file operations wrap theirs in *os.PathError, which
// the store counts as its own).
func errorSource(err error) string {
	var errno syscall.Errno
	switch {
	case err == nil:
		return ""
	case store.IsError(err):
		return SourceStore
	case errors.As(err, &errno):
		return SourceNetlink
	}
	return ""
}

func (c *Calls) Describe(ch chan<- *prometheus.Desc) {
	c.duration.Describe(ch)
	c.failures.Describe(ch)
	c.errs.Describe(ch)
}

func (c *Calls) Collect(ch chan<- prometheus.Metric) {
	c.duration.Collect(ch)
	c.failures.Collect(ch)
	c.errs.Collect(ch)
}
