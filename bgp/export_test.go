package bgp

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

// TestExportOnlyOwnedAllowedPrefixes: a route leaf1 sends reaches our RIB
// but never leaf2 (no transit), and an owned advert outside the export
// allow list is not sent while one inside is.
func TestExportOnlyOwnedAllowedPrefixes(t *testing.T) {
	ns1, host1, peer1 := link(t, "leaf1")
	ns2, host2, peer2 := link(t, "leaf2")
	testnet.Host.AddAddr(t, host1, "10.0.3.1/30")
	ns1.AddAddr(t, peer1, "10.0.3.2/30")
	testnet.Host.AddAddr(t, host2, "10.0.4.1/30")
	ns2.AddAddr(t, peer2, "10.0.4.2/30")
	testnet.StartFRR(t, ns1, frrLeaf(65031, "10.0.3.2", ` neighbor 10.0.3.1 remote-as 64512
 address-family ipv4 unicast
  network 198.51.100.0/24
 exit-address-family`))
	leaf2 := testnet.StartFRR(t, ns2, frrLeaf(65032, "10.0.4.2", " neighbor 10.0.4.1 remote-as 64512"))
	cfg := testConfig(numbered("10.0.3.2", 65031), numbered("10.0.4.2", 65032))
	cfg.ExportAllow = []config.PrefixRule{{Prefix: netip.MustParsePrefix("10.3.0.0/16"), MinLen: 16, MaxLen: 32}}
	s := startSpeaker(t, cfg)

	testnet.WaitFor(t, 30*time.Second, "leaf1's 198.51.100.0/24 in our RIB", func() (bool, string) {
		return ribHas(t, s, "198.51.100.0/24"), "not yet"
	})
	s.Set("ep", []route.Advert{advert("10.3.0.1/32"), advert("10.4.0.1/32")})
	// Paths added through GoBGP's API (the gobgp CLI) meet the same rules.
	for _, p := range []string{"10.4.0.2/32", "0.0.0.0/0"} {
		addThroughAPI(t, s, p)
	}
	testnet.WaitFor(t, 30*time.Second, "10.3.0.1/32 at leaf2", func() (bool, string) {
		out := kernelRoute(ns2, "10.3.0.1/32")
		return strings.Contains(out, "via 10.0.4.1"), out
	})
	// Updates to leaf2 go out in order: once a path added after all the
	// others is there, a transit route or a refused path would be too.
	addThroughAPI(t, s, "10.3.0.99/32")
	testnet.WaitFor(t, 30*time.Second, "the last path, 10.3.0.99/32, at leaf2", func() (bool, string) {
		got := frrLookup(t, leaf2, "10.3.0.99/32")
		return len(got.Paths) > 0, fmt.Sprint(got)
	})
	for _, p := range []string{"198.51.100.0/24", "10.4.0.1/32", "10.4.0.2/32", "0.0.0.0/0"} {
		if got := frrLookup(t, leaf2, p); len(got.Paths) != 0 {
			t.Errorf("leaf2 received %s: %+v", p, got)
		}
	}
	if !s.Owns(netip.MustParsePrefix("10.4.0.1/32")) || s.Owns(netip.MustParsePrefix("198.51.100.0/24")) {
		t.Errorf("Owns: want true for our refused advert, false for leaf1's route")
	}
}

// TestExportRefusesBroadPrefixes: with the default rules a default route, a
// half of it and a /8 stay home, whether the driver or the API adds them,
// while a /24 goes out.
func TestExportRefusesBroadPrefixes(t *testing.T) {
	ns1, host1, peer1 := link(t, "leaf1")
	testnet.Host.AddAddr(t, host1, "10.0.5.1/30")
	ns1.AddAddr(t, peer1, "10.0.5.2/30")
	leaf := testnet.StartFRR(t, ns1, frrLeaf(65051, "10.0.5.2", " neighbor 10.0.5.1 remote-as 64512"))
	cfg := testConfig(numbered("10.0.5.2", 65051))
	cfg.ExportMinLen = config.MinLen{V4: 16, V6: 48}
	s := startSpeaker(t, cfg)
	s.Set("net", []route.Advert{advert("0.0.0.0/0"), advert("128.0.0.0/1"), advert("10.0.0.0/8")})
	addThroughAPI(t, s, "0.0.0.0/1")
	s.Set("ok", []route.Advert{advert("10.5.1.0/24")})
	testnet.WaitFor(t, 30*time.Second, "10.5.1.0/24 at the leaf", func() (bool, string) {
		got := frrLookup(t, leaf, "10.5.1.0/24")
		return len(got.Paths) > 0, fmt.Sprint(got)
	})
	addThroughAPI(t, s, "10.5.2.0/24")
	testnet.WaitFor(t, 30*time.Second, "the last path, 10.5.2.0/24, at the leaf", func() (bool, string) {
		got := frrLookup(t, leaf, "10.5.2.0/24")
		return len(got.Paths) > 0, fmt.Sprint(got)
	})
	for _, p := range []string{"0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1", "10.0.0.0/8"} {
		if got := frrLookup(t, leaf, p); len(got.Paths) != 0 {
			t.Errorf("the leaf received %s: %+v", p, got)
		}
	}
}

// TestExportRules: by default every prefix at least the minimum length, in
// both families; an allow list replaces that and may name broader ones.
func TestExportRules(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		allowed []string
		refused []string
	}{
		{"defaults", map[string]string{},
			[]string{"10.244.0.0/16", "10.244.1.5/32", "fd00:244::/48", "fd00:244::5/128"},
			[]string{"0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1", "10.0.0.0/8", "::/0", "::/1", "fd00::/8", "fd00:244::/47"}},
		{"lowered", map[string]string{config.EnvExportMinV4Len: "8", config.EnvExportMinV6Len: "0"},
			[]string{"10.0.0.0/8", "::/0", "fd00::/8"},
			[]string{"0.0.0.0/0", "0.0.0.0/7"}},
		{"allow list names a broad prefix", map[string]string{config.EnvExportAllow: "0.0.0.0/0, 10.0.0.0/8 le 32"},
			[]string{"0.0.0.0/0", "10.0.0.0/8", "10.9.0.0/9", "10.1.2.3/32"},
			[]string{"0.0.0.0/1", "11.0.0.0/16", "fd00::/64"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadEnv(t, tc.env)
			s := NewSpeaker(cfg, Options{})
			for _, p := range tc.allowed {
				if !s.exportAllowed(netip.MustParsePrefix(p)) {
					t.Errorf("%s refused, want allowed", p)
				}
			}
			for _, p := range tc.refused {
				if s.exportAllowed(netip.MustParsePrefix(p)) {
					t.Errorf("%s allowed, want refused", p)
				}
			}
		})
	}
}

// TestCheckExport: only prefixes broader than the minimum that the allow
// list does not name are errors; one merely outside the allow list is not.
func TestCheckExport(t *testing.T) {
	cfg := loadEnv(t, map[string]string{config.EnvExportAllow: "10.1.0.0/16 le 32, 10.0.0.0/8"})
	s := NewSpeaker(cfg, Options{})
	for p, want := range map[string]string{
		"10.1.0.0/16":   "",
		"10.0.0.0/8":    "",
		"10.2.0.0/24":   "", // outside the list: a warning, not an error
		"0.0.0.0/0":     "0.0.0.0/0 is shorter than /16, the shortest prefix this host announces: name it in BGP_EXPORT_ALLOW, or lower BGP_EXPORT_MIN_V4_LEN",
		"172.16.0.0/12": "172.16.0.0/12 is shorter than /16",
		"fd00::/32":     "fd00::/32 is shorter than /48, the shortest prefix this host announces: name it in BGP_EXPORT_ALLOW, or lower BGP_EXPORT_MIN_V6_LEN",
	} {
		err := s.CheckExport(netip.MustParsePrefix(p))
		switch {
		case want == "" && err != nil:
			t.Errorf("CheckExport(%s) = %v, want nil", p, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("CheckExport(%s) = %v, want %q", p, err, want)
		}
	}
}

// loadEnv is the config the settings in env make, with an empty config
// file.
func loadEnv(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	file := filepath.Join(t.TempDir(), "bgp.toml")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env[config.EnvConfigFile] = file
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// addThroughAPI adds a locally originated path the way the gobgp CLI does,
// past the speaker's own checks.
func addThroughAPI(t *testing.T, s *Speaker, prefix string) {
	t.Helper()
	path, err := buildPath(netip.MustParsePrefix(prefix), pathAttrs{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.server.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}}); err != nil {
		t.Fatalf("AddPath %s through the API: %v", prefix, err)
	}
}

// ribHas reports whether GoBGP's global RIB holds prefix.
func ribHas(t *testing.T, s *Speaker, prefix string) bool {
	found := false
	err := s.server.ListPath(apiutil.ListPathRequest{
		TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_IPv4_UC,
		Prefixes: []*apiutil.LookupPrefix{{Prefix: prefix}},
	}, func(_ bgp.NLRI, paths []*apiutil.Path) { found = found || len(paths) > 0 })
	if err != nil {
		t.Fatalf("ListPath: %v", err)
	}
	return found
}
