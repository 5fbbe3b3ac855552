package metrics

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkScrape is one scrape of a host with 1,000 containers on one
// network: what each Prometheus scrape costs the plugin.
func BenchmarkScrape(b *testing.B) {
	p := newPlugin(b, 0)
	network := strings.Repeat("a", 64)
	pool := p.network(b, network, "10.10.0.0/16", "host")
	for i := range 1000 {
		p.endpoint(b, network, pool, fmt.Sprintf("%04d%s", i, strings.Repeat("e", 60)))
	}
	h := p.metrics.Handler()
	var size int
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if w.Code != http.StatusOK {
			b.Fatalf("scrape: %d", w.Code)
		}
		size = w.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}
