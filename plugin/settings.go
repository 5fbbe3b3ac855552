package main

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ipvlan-bgp/ipvlan-bgp/driver"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/badvalue"
)

// A setting is one plugin setting: an Env entry of config.json that
// `docker plugin set` changes. The BGP speaker's settings (BGP_*) are read by
// package bgp.
type setting struct {
	name string
	def  string
	doc  string
}

// settings lists every non-BGP setting with its default; config.json and
// the README's reference are checked against it by tests.
var settings = []setting{
	{"LOG_LEVEL", "info", "log level: debug, info, warn or error"},
	{"LOG_FORMAT", "text", "log format: text or json"},
	{"STATE_DIR", "/state", "directory of the state file (the plugin's propagated mount)"},
	{"SOCKET", "/run/docker/plugins/ipvlan-bgp.sock", "the plugin API's unix socket"},
	{"IPAM_DEFAULT_POOLS", "10.248.0.0/16,fd0c:248::/48", "ranges a pool is carved from when `docker network create` gives no --subnet"},
	{"IPAM_DEFAULT_V4_LEN", "24", "prefix length of a carved IPv4 pool"},
	{"IPAM_DEFAULT_V6_LEN", "64", "prefix length of a carved IPv6 pool"},
	{"IPAM_LOCAL_RANGES", "", "this host's blocks (CIDRs): in a pool holding one, this host allocates only from it, so the same --subnet works on every host"},
	{"IPAM_CLAIM_WINDOW", "60", "seconds a pool or address may wait for its network or container before what an interrupted docker command left is reclaimed"},
	{"METRICS_ADDRESS", "", "where Prometheus metrics are served at /metrics: unix:PATH (a root-only socket) or HOST:PORT such as 127.0.0.1:9475; empty: off"},
	{"STATUS_SOCKET", "/state/status.sock", "root-only unix socket `ipvlan-bgp status` reads; none: off"},
	{"ROUTE_BUDGET", "0", "the most routes this host announces (host routes and subnets); past it new containers are refused or fall back; 0: no limit"},
	{"ROUTE_BUDGET_FALLBACK", "refuse", "past ROUTE_BUDGET: refuse (docker run fails, saying why) or subnet (announce the network's subnet instead of the container's address)"},
}

// config is the validated form of the settings.
type config struct {
	logLevel, logFormat string
	stateDir, socket    string
	defaultPools        []netip.Prefix
	defaultV4Len        int
	defaultV6Len        int
	localRanges         []netip.Prefix
	claimWindow         time.Duration
	metricsAddress      string // "" is off
	statusSocket        string // "" is off
	routeBudget         int
	budgetFallback      driver.BudgetFallback
}

// settingError names the setting, its value and why it was refused: this is
// what an operator sees after a bad `docker plugin set`.
func settingError(name, value, reason string) error {
	return &badvalue.Error{Kind: "setting", Name: name, Value: value, Reason: reason}
}

// loadConfig reads every setting through getenv, falling back to defaults.
func loadConfig(getenv func(string) string) (config, error) {
	get := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		for _, s := range settings {
			if s.name == name {
				return s.def
			}
		}
		return ""
	}
	cfg := config{
		logLevel:  get("LOG_LEVEL"),
		logFormat: get("LOG_FORMAT"),
		stateDir:  get("STATE_DIR"),
		socket:    get("SOCKET"),
	}
	if cfg.logFormat != "text" && cfg.logFormat != "json" {
		return cfg, settingError("LOG_FORMAT", cfg.logFormat, "want text or json")
	}
	var err error
	if cfg.defaultPools, err = prefixList("IPAM_DEFAULT_POOLS", get("IPAM_DEFAULT_POOLS")); err != nil {
		return cfg, err
	}
	if cfg.localRanges, err = prefixList("IPAM_LOCAL_RANGES", get("IPAM_LOCAL_RANGES")); err != nil {
		return cfg, err
	}
	if cfg.defaultV4Len, err = prefixLen("IPAM_DEFAULT_V4_LEN", get("IPAM_DEFAULT_V4_LEN"), 8, 30); err != nil {
		return cfg, err
	}
	if cfg.defaultV6Len, err = prefixLen("IPAM_DEFAULT_V6_LEN", get("IPAM_DEFAULT_V6_LEN"), 48, 120); err != nil {
		return cfg, err
	}
	window := get("IPAM_CLAIM_WINDOW")
	if seconds, err := strconv.Atoi(window); err != nil || seconds < 1 || seconds > 3600 {
		return cfg, settingError("IPAM_CLAIM_WINDOW", window, "want seconds from 1 to 3600")
	} else {
		cfg.claimWindow = time.Duration(seconds) * time.Second
	}
	return cfg, loadOperatorSettings(&cfg, get)
}

// loadOperatorSettings reads the settings of the operator's view: metrics,
// status socket and route budget.
func loadOperatorSettings(cfg *config, get func(string) string) error {
	var err error
	if cfg.metricsAddress, err = metricsAddress(get("METRICS_ADDRESS")); err != nil {
		return err
	}
	if cfg.statusSocket = get("STATUS_SOCKET"); cfg.statusSocket == "none" {
		cfg.statusSocket = ""
	} else if !filepath.IsAbs(cfg.statusSocket) {
		return settingError("STATUS_SOCKET", cfg.statusSocket, "want an absolute path, or none")
	}
	cfg.routeBudget, cfg.budgetFallback, err = driver.ParseBudget(get("ROUTE_BUDGET"), get("ROUTE_BUDGET_FALLBACK"))
	return err
}

// metricsAddress checks METRICS_ADDRESS: unix:/absolute/path or HOST:PORT.
func metricsAddress(value string) (string, error) {
	if value == "" {
		return "", nil
	}
	if path, ok := strings.CutPrefix(value, "unix:"); ok {
		if !filepath.IsAbs(path) {
			return "", settingError("METRICS_ADDRESS", value, "a unix socket needs an absolute path (unix:/state/metrics.sock)")
		}
		return value, nil
	}
	if _, port, err := net.SplitHostPort(value); err != nil || port == "" {
		return "", settingError("METRICS_ADDRESS", value, "want unix:PATH or HOST:PORT (127.0.0.1:9475)")
	}
	return value, nil
}

func prefixList(name, value string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(value, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, settingError(name, value, fmt.Sprintf("%q is not a CIDR prefix", item))
		}
		if p != p.Masked() {
			return nil, settingError(name, value, fmt.Sprintf("%q has host bits set (did you mean %s?)", item, p.Masked()))
		}
		out = append(out, p)
	}
	return out, nil
}

func prefixLen(name, value string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(value)
	if err != nil || n < lo || n > hi {
		return 0, settingError(name, value, fmt.Sprintf("want a prefix length from %d to %d", lo, hi))
	}
	return n, nil
}
