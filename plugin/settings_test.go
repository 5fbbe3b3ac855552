package main

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	bgpconfig "github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
)

type manifest struct {
	Env []struct {
		Name, Description, Value string
		Settable                 []string
	}
}

func readManifest(t *testing.T) manifest {
	t.Helper()
	raw, err := os.ReadFile("../config.json")
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	return m
}

// TestManifestMatchesSettings keeps config.json, the code's defaults and the
// settings it reads from drifting apart.
func TestManifestMatchesSettings(t *testing.T) {
	m := readManifest(t)
	env := map[string]string{}
	for _, e := range m.Env {
		if len(e.Settable) != 1 || e.Settable[0] != "value" || e.Description == "" {
			t.Errorf("config.json env %s: want a description and settable [value]", e.Name)
		}
		env[e.Name] = e.Value
	}
	for _, s := range settings {
		v, ok := env[s.name]
		if !ok {
			t.Errorf("setting %s is missing from config.json", s.name)
		} else if v != s.def {
			t.Errorf("setting %s: config.json default %q, code default %q", s.name, v, s.def)
		}
	}
	for name := range env {
		if !isPluginSetting(name) && !strings.HasPrefix(name, "BGP_") {
			t.Errorf("config.json sets %s, which nothing reads", name)
		}
	}
	getenv := func(k string) string { return env[k] }
	if _, err := loadConfig(getenv); err != nil {
		t.Errorf("config.json defaults are refused: %v", err)
	}
	if _, err := bgpconfig.Load(getenv); err != nil {
		t.Errorf("config.json BGP defaults are refused: %v", err)
	}
}

func isPluginSetting(name string) bool {
	for _, s := range settings {
		if s.name == name {
			return true
		}
	}
	return false
}

func TestBadSettingsNameThemselves(t *testing.T) {
	tests := []struct{ name, value, want string }{
		{"LOG_FORMAT", "xml", "want text or json"},
		{"IPAM_DEFAULT_POOLS", "10.0.0.0/33", "not a CIDR"},
		{"IPAM_DEFAULT_POOLS", "10.0.0.1/8", "host bits"},
		{"IPAM_LOCAL_RANGES", "banana", "not a CIDR"},
		{"IPAM_DEFAULT_V4_LEN", "31", "from 8 to 30"},
		{"IPAM_DEFAULT_V6_LEN", "sixty-four", "from 48 to 120"},
		{"IPAM_CLAIM_WINDOW", "0", "seconds from 1 to 3600"},
		{"IPAM_CLAIM_WINDOW", "1m", "seconds from 1 to 3600"},
		{"METRICS_ADDRESS", "9475", "HOST:PORT"},
		{"METRICS_ADDRESS", "unix:metrics.sock", "absolute path"},
		{"STATUS_SOCKET", "status.sock", "absolute path"},
		{"ROUTE_BUDGET", "-1", "0 for no limit"},
		{"ROUTE_BUDGET", "lots", "number of routes"},
		{"ROUTE_BUDGET_FALLBACK", "drop", "refuse or subnet"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := loadConfig(func(k string) string {
				if k == tt.name {
					return tt.value
				}
				return ""
			})
			var se *settingError
			if !errors.As(err, &se) || se.name != tt.name || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want a setting error naming %s saying %q", err, tt.name, tt.want)
			}
		})
	}
}

func TestOperatorSettings(t *testing.T) {
	tests := []struct {
		env             map[string]string
		metrics, status string
		budget          int
		fallback        string
	}{
		{map[string]string{}, "", "/state/status.sock", 0, "refuse"},
		{map[string]string{"METRICS_ADDRESS": "unix:/state/metrics.sock", "STATUS_SOCKET": "none"}, "unix:/state/metrics.sock", "", 0, "refuse"},
		{map[string]string{"METRICS_ADDRESS": "127.0.0.1:9475", "ROUTE_BUDGET": "500", "ROUTE_BUDGET_FALLBACK": "subnet"}, "127.0.0.1:9475", "/state/status.sock", 500, "subnet"},
		{map[string]string{"METRICS_ADDRESS": "[::1]:9475"}, "[::1]:9475", "/state/status.sock", 0, "refuse"},
	}
	for _, tt := range tests {
		cfg, err := loadConfig(func(k string) string { return tt.env[k] })
		if err != nil {
			t.Errorf("%v: %v", tt.env, err)
			continue
		}
		if cfg.metricsAddress != tt.metrics || cfg.statusSocket != tt.status || cfg.routeBudget != tt.budget || string(cfg.budgetFallback) != tt.fallback {
			t.Errorf("%v: metrics %q status %q budget %d fallback %q, want %q %q %d %q", tt.env,
				cfg.metricsAddress, cfg.statusSocket, cfg.routeBudget, cfg.budgetFallback, tt.metrics, tt.status, tt.budget, tt.fallback)
		}
	}
}
