package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/badvalue"
)

func generic(kv ...string) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return map[string]any{dockerGeneric: m}
}

func TestParseNetworkOptions(t *testing.T) {
	defaults := networkConfig{Parent: "eth0", Mode: modeL3, Flag: flagBridge, Announce: announceHost}
	with := func(change func(*networkConfig)) networkConfig {
		c := defaults
		change(&c)
		return c
	}
	tests := []struct {
		name string
		opts map[string]any
		want networkConfig
	}{
		{"no options: dummy parent, internal, nothing announced", nil,
			networkConfig{Mode: modeL3, Flag: flagBridge, Announce: announceNone, Internal: true}},
		{"parent", generic("parent", "eth0"), defaults},
		{"vlan parent", generic("parent", "eth0.100"), with(func(c *networkConfig) { c.Parent, c.ParentNIC, c.VLAN = "eth0.100", "eth0", 100 })},
		{"vlan 4094 on a dotted NIC", generic("parent", "br.x.4094"), with(func(c *networkConfig) { c.Parent, c.ParentNIC, c.VLAN = "br.x.4094", "br.x", 4094 })},
		{"dotted NIC without VLAN", generic("parent", "br.lan"), with(func(c *networkConfig) { c.Parent = "br.lan" })},
		{"mode l3s", generic("parent", "eth0", "ipvlan_mode", "l3s"), with(func(c *networkConfig) { c.Mode = modeL3S })},
		{"mode l2", generic("parent", "eth0", "ipvlan_mode", "l2"), with(func(c *networkConfig) { c.Mode = modeL2 })},
		{"flag private", generic("parent", "eth0", "ipvlan_flag", "private"), with(func(c *networkConfig) { c.Flag = flagPrivate })},
		{"flag vepa", generic("parent", "eth0", "ipvlan_flag", "vepa"), with(func(c *networkConfig) { c.Flag = flagVEPA })},
		{"mtu", generic("parent", "eth0", "mtu", "9000"), with(func(c *networkConfig) { c.MTU = 9000 })},
		{"docker's mtu key", generic("parent", "eth0", "com.docker.network.driver.mtu", "1400"), with(func(c *networkConfig) { c.MTU = 1400 })},
		{"both mtu keys agreeing", generic("parent", "eth0", "mtu", "1400", "com.docker.network.driver.mtu", "1400"), with(func(c *networkConfig) { c.MTU = 1400 })},
		{"announce subnet", generic("parent", "eth0", "announce", "subnet"), with(func(c *networkConfig) { c.Announce = announceSubnet })},
		{"announce none", generic("parent", "eth0", "announce", "none"), with(func(c *networkConfig) { c.Announce = announceNone })},
		{"communities", generic("parent", "eth0", "communities", "65000:1, 65000:2"),
			with(func(c *networkConfig) { c.Communities = []string{"65000:1", "65000:2"} })},
		{"large communities", generic("parent", "eth0", "large_communities", "65000:1:2"),
			with(func(c *networkConfig) { c.LargeCommunities = []string{"65000:1:2"} })},
		{"docker's own keys", map[string]any{dockerGeneric: map[string]any{"parent": "eth0"}, dockerEnableIPv6: true, dockerEnableIPv4: "true", dockerInternal: false}, defaults},
		{"internal without parent", map[string]any{dockerInternal: true},
			networkConfig{Mode: modeL3, Flag: flagBridge, Announce: announceNone, Internal: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNetworkOptions(tt.opts)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseNetworkOptionsErrors(t *testing.T) {
	tests := []struct {
		name   string
		opts   map[string]any
		option string // the option the error must name
		reason string // a word the reason must hold
	}{
		{"unknown option", generic("parent", "eth0", "vlan", "5"), "vlan", "unknown"},
		{"loopback parent", generic("parent", "lo"), "parent", "loopback"},
		{"VLAN on loopback", generic("parent", "lo.5"), "parent", "loopback"},
		{"VLAN 0", generic("parent", "eth0.0"), "parent", "1-4094"},
		{"VLAN 4095", generic("parent", "eth0.4095"), "parent", "1-4094"},
		{"VLAN without NIC", generic("parent", ".5"), "parent", "NIC"},
		{"parent name too long", generic("parent", "abcdefghijklmnop"), "parent", "15"},
		{"parent with slash", generic("parent", "eth/0"), "parent", "'/'"},
		{"bad mode", generic("parent", "eth0", "ipvlan_mode", "l4"), "ipvlan_mode", "l3s"},
		{"bad flag", generic("parent", "eth0", "ipvlan_flag", "public"), "ipvlan_flag", "vepa"},
		{"mtu not a number", generic("parent", "eth0", "mtu", "big"), "mtu", "number"},
		{"mtu too small", generic("parent", "eth0", "mtu", "67"), "mtu", "number"},
		{"mtu too big", generic("parent", "eth0", "mtu", "65536"), "mtu", "number"},
		{"mtu keys disagree", generic("parent", "eth0", "mtu", "1400", "com.docker.network.driver.mtu", "1500"), "com.docker.network.driver.mtu", "disagrees"},
		{"bad announce", generic("parent", "eth0", "announce", "all"), "announce", "subnet"},
		{"bad community", generic("parent", "eth0", "communities", "65000"), "communities", "numbers"},
		{"community out of range", generic("parent", "eth0", "communities", "65536:1"), "communities", "16-bit"},
		{"bad large community", generic("parent", "eth0", "large_communities", "1:2"), "large_communities", "numbers"},
		{"communities past an UPDATE", generic("parent", "eth0", "communities", communityList(513)), "communities", "513 communities and 0 large communities take 2052 bytes of a BGP UPDATE; at most 2048 fit"},
		{"large communities past an UPDATE", generic("parent", "eth0", "large_communities", largeCommunityList(171)), "large_communities", "take 2052 bytes"},
		{"both past an UPDATE", generic("parent", "eth0", "communities", communityList(300), "large_communities", largeCommunityList(80)), "communities", "300 communities and 80 large communities take 2160 bytes"},
		{"communities announcing nothing", generic("parent", "eth0", "announce", "none", "communities", "65000:1"), "communities", "announce=none"},
		{"large communities announcing nothing", generic("large_communities", "65000:1:1"), "large_communities", "announce=none"},
		{"internal with parent", map[string]any{dockerInternal: true, dockerGeneric: map[string]any{"parent": "eth0"}}, "parent", "internal"},
		{"internal announcing", generic("announce", "host"), "announce", "internal"},
		{"generic not a map", map[string]any{dockerGeneric: "parent=eth0"}, dockerGeneric, "map"},
		{"option not a string", map[string]any{dockerGeneric: map[string]any{"mtu": 1500.0}}, "mtu", "string"},
		{"ipv6 flag not a bool", map[string]any{dockerEnableIPv6: 1.0}, dockerEnableIPv6, "true or false"},
		{"ipv4 flag not a bool", map[string]any{dockerEnableIPv4: "maybe"}, dockerEnableIPv4, "true or false"},
		{"internal flag not a bool", map[string]any{dockerInternal: []any{}}, dockerInternal, "true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseNetworkOptions(tt.opts)
			checkOptionError(t, err, tt.option, tt.reason)
		})
	}
}

// communityList is n distinct communities, comma separated.
func communityList(n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf("65000:%d", i)
	}
	return strings.Join(items, ",")
}

func largeCommunityList(n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf("65000:1:%d", i)
	}
	return strings.Join(items, ",")
}

func checkOptionError(t *testing.T, err error, option, reason string) {
	t.Helper()
	var oe *badvalue.Error
	if !errors.As(err, &oe) {
		t.Fatalf("got error %v, want a *badvalue.Error", err)
	}
	if oe.Name != option {
		t.Errorf("error names option %q, want %q (%v)", oe.Name, option, err)
	}
	if !strings.Contains(err.Error(), reason) || !strings.Contains(err.Error(), option) {
		t.Errorf("error %q should name %q and say %q", err, option, reason)
	}
}

func TestParseEndpointOptions(t *testing.T) {
	tests := []struct {
		name string
		opts map[string]any
		want endpointConfig
	}{
		{"none", nil, endpointConfig{}},
		{"communities", map[string]any{"communities": "65000:7"}, endpointConfig{communityOptions: communityOptions{Communities: []string{"65000:7"}}}},
		{"large communities", map[string]any{"large_communities": "1:2:3"}, endpointConfig{communityOptions: communityOptions{LargeCommunities: []string{"1:2:3"}}}},
		{"interface name (Docker 28)", map[string]any{dockerIfName: "data0"}, endpointConfig{IfName: "data0"}},
		{"docker's own keys skipped", map[string]any{
			"com.docker.network.portmap":               []any{map[string]any{"Proto": 6.0}},
			"com.docker.network.endpoint.exposedports": []any{},
			"com.docker.network.endpoint.sysctls":      "net.ipv4.conf.IFNAME.forwarding=1",
			dockerMAC:                                  "",
		}, endpointConfig{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEndpointOptions(tt.opts)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseEndpointOptionsErrors(t *testing.T) {
	tests := []struct {
		name           string
		opts           map[string]any
		option, reason string
	}{
		{"unknown driver-opt", map[string]any{"announce": "none"}, "announce", "unknown"},
		{"not a string", map[string]any{"communities": 65000.0}, "communities", "string"},
		{"bad community", map[string]any{"communities": "a:b"}, "communities", "16-bit"},
		{"bad large community", map[string]any{"large_communities": "1:2:99999999999"}, "large_communities", "32-bit"},
		{"MAC address", map[string]any{dockerMAC: "02:42:ac:11:00:02"}, "mac-address", "MAC"},
		{"MAC address in another form", map[string]any{dockerMAC: []any{2.0, 66.0}}, "mac-address", "MAC"},
		{"interface name too long", map[string]any{dockerIfName: "a-very-long-name0"}, dockerIfName, "at most 15 characters"},
		{"interface name with a slash", map[string]any{dockerIfName: "eth/0"}, dockerIfName, "'/'"},
		{"interface name not a string", map[string]any{dockerIfName: 7.0}, dockerIfName, "empty interface name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseEndpointOptions(tt.opts)
			checkOptionError(t, err, tt.option, tt.reason)
		})
	}
}

func TestParsePools(t *testing.T) {
	got, err := parsePools([]poolData{{Pool: "10.1.2.0/24", Gateway: "10.1.2.1/24"}, {Pool: "10.9.0.0/16"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []pool{
		{Prefix: netip.MustParsePrefix("10.1.2.0/24"), Gateway: netip.MustParseAddr("10.1.2.1")},
		{Prefix: netip.MustParsePrefix("10.9.0.0/16")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	errs := []struct {
		name    string
		pools   []poolData
		want4   bool
		option  string
		because string
	}{
		{"garbage", []poolData{{Pool: "ten/8"}}, true, "subnet", "IPv4"},
		{"IPv6 in IPv4Data", []poolData{{Pool: "fd00::/64"}}, true, "subnet", "IPv4"},
		{"IPv4 in IPv6Data", []poolData{{Pool: "10.0.0.0/8"}}, false, "subnet", "IPv6"},
		{"gateway outside", []poolData{{Pool: "10.0.0.0/24", Gateway: "10.0.1.1/24"}}, true, "gateway", "inside"},
		{"gateway garbage", []poolData{{Pool: "fd00::/64", Gateway: "fd00::zz"}}, false, "gateway", "inside"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parsePools(tt.pools, tt.want4)
			checkOptionError(t, err, tt.option, tt.because)
		})
	}
}

func TestCheckDockerID(t *testing.T) {
	for id, ok := range map[string]bool{
		strings.Repeat("ab12", 16): true,
		"0123456789ab":             true,
		"0123456789a":              false, // too short for a link name
		// A swarm-scoped network's ID, as Docker 28.5 sent it in the lab.
		"p54l6q32wh3wkaqx8f6c8kf3s":  true,
		"p54l6q32wh3wkaqx8f6c8kf3":   false, // one short
		"p54l6q32wh3wkaqx8f6c8kf3s0": false, // one long, and not hexadecimal
		"P54l6q32wh3wkaqx8f6c8kf3s":  false,
		"p54l6q32wh3wkaqx8f6c8kf3-":  false,
		"":                           false,
		"0123456789AB":               false,
		"../../../etc":               false,
	} {
		if err := checkDockerID("endpoint", id); (err == nil) != ok {
			t.Errorf("checkDockerID(%q) = %v, want ok=%v", id, err, ok)
		}
	}
}

func TestParseParentIsStable(t *testing.T) {
	// A stored config parsed again must give the same parent: Reconcile
	// relies on the record alone.
	cfg, err := parseNetworkOptions(generic("parent", "bond0.42", "mtu", "9000"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var back networkConfig
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, back) {
		t.Errorf("round trip through the store changed the config:\n%+v\n%+v", cfg, back)
	}
}

// FuzzParseNetworkOptions feeds CreateNetwork options as Docker's JSON
// would carry them: any shape must give a config or an error, never a
// panic, and an accepted config must be one the rest of the driver can use.
func FuzzParseNetworkOptions(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"com.docker.network.generic":{"parent":"eth0.100","mtu":"1400","announce":"subnet"}}`,
		`{"com.docker.network.generic":{"parent":"eth0","ipvlan_mode":"l2","ipvlan_flag":"vepa","communities":"1:2","large_communities":"1:2:3"}}`,
		`{"com.docker.network.generic":{"com.docker.network.driver.mtu":9000},"com.docker.network.enable_ipv6":"yes"}`,
		`{"com.docker.network.internal":true,"com.docker.network.generic":null}`,
		`{"com.docker.network.generic":["parent"]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var opts map[string]any
		if json.Unmarshal(raw, &opts) != nil {
			return
		}
		cfg, err := parseNetworkOptions(opts)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error text")
			}
			return
		}
		checkConfigUsable(t, cfg)
	})
}

func checkConfigUsable(t *testing.T, cfg networkConfig) {
	t.Helper()
	if _, ok := kernelModes[cfg.Mode]; !ok {
		t.Fatalf("accepted mode %q", cfg.Mode)
	}
	if _, ok := kernelFlags[cfg.Flag]; !ok {
		t.Fatalf("accepted flag %q", cfg.Flag)
	}
	if cfg.Parent == "" && !cfg.Internal {
		t.Fatal("no parent but not internal")
	}
	if cfg.Internal && cfg.Announce != announceNone {
		t.Fatalf("internal network announces %q", cfg.Announce)
	}
	if cfg.Parent != "" && (checkIfName(cfg.Parent) != nil || cfg.Parent == "lo") {
		t.Fatalf("accepted parent %q", cfg.Parent)
	}
	if cfg.VLAN != 0 && (cfg.VLAN > maxVLANID || cfg.ParentNIC == "" || cfg.ParentNIC == "lo") {
		t.Fatalf("accepted VLAN parent %q (nic %q, vid %d)", cfg.Parent, cfg.ParentNIC, cfg.VLAN)
	}
	if cfg.MTU != 0 && (cfg.MTU < minMTU || cfg.MTU > maxMTU) {
		t.Fatalf("accepted mtu %d", cfg.MTU)
	}
}

// FuzzParseEndpointOptions does the same for CreateEndpoint and Join
// options.
func FuzzParseEndpointOptions(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"communities":"65000:1","large_communities":"1:2:3"}`,
		`{"com.docker.network.portmap":[{"Proto":6}],"com.docker.network.endpoint.macaddress":""}`,
		`{"com.docker.network.endpoint.macaddress":"AkKsEQAC"}`,
		`{"communities":7}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var opts map[string]any
		if json.Unmarshal(raw, &opts) != nil {
			return
		}
		cfg, err := parseEndpointOptions(opts)
		if err != nil {
			return
		}
		for _, c := range cfg.Communities {
			if strings.Count(c, ":") != 1 {
				t.Fatalf("accepted community %q", c)
			}
		}
		for _, c := range cfg.LargeCommunities {
			if strings.Count(c, ":") != 2 {
				t.Fatalf("accepted large community %q", c)
			}
		}
	})
}
