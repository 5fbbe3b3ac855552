package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/logs"
)

const operations = "../docs/operations.md"

// TestDocsSecurityModel: operations.md's privilege table names exactly the
// capabilities config.json asks for, and the host network when config.json
// asks for it, so a capability added or dropped cannot go unexplained.
func TestDocsSecurityModel(t *testing.T) {
	m := readManifest(t)
	want := slices.Clone(m.Linux.Capabilities)
	if m.Network.Type == "host" {
		want = append(want, `"network": {"type": "host"}`)
	}
	var got []string
	for _, row := range tableRows(t, readDoc(t, operations), "privilege") {
		spans := codeSpans(row[0])
		if len(spans) != 1 {
			t.Errorf("operations.md: privilege %q: want one code span", row[0])
			continue
		}
		if strings.TrimSpace(row[1]) == "" {
			t.Errorf("operations.md: privilege %s says nothing of what it is for", spans[0])
		}
		got = append(got, spans[0])
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("operations.md's privileges %q; config.json asks for %q", got, want)
	}
}

// TestLogsComponentConst: the constant logKeys takes for the field
// internal/logs.For sets is "component".
func TestLogsComponentConst(t *testing.T) {
	if logs.Component != "component" {
		t.Fatalf("logs.Component = %q; logKeys takes it for \"component\"", logs.Component)
	}
}
