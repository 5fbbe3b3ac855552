package status

import (
	"encoding/json"
	"io"
	"testing"
)

// FuzzRender: whatever a status socket answers, decoding and rendering it
// never panics.
func FuzzRender(f *testing.F) {
	f.Add([]byte(`{"networks":[{"id":"ab","subnets":null}],"bgp":{"peers":[{"address":"10.0.0.1","uptime_seconds":-5}]}}`))
	f.Add([]byte(`{"endpoints":[{"id":"","addresses":["x"],"budget_fallback":true}],"installed_routes":[{}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var doc Document
		if json.Unmarshal(raw, &doc) != nil {
			return
		}
		if err := Render(io.Discard, doc); err != nil {
			t.Fatalf("Render: %v", err)
		}
	})
}
