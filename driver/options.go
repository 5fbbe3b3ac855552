package driver

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/badvalue"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
)

// Network options, as given to `docker network create -d ipvlan-bgp -o KEY=VALUE`.
const (
	// -o parent=eth0 (an existing NIC) or -o parent=eth0.100 (an 802.1q
	// sub-interface the plugin creates if missing). No parent: a dummy parent
	// owned by the plugin, and the network is internal.
	optParent = "parent"
	// -o ipvlan_mode=l3|l3s|l2 (default l3).
	optMode = "ipvlan_mode"
	// -o ipvlan_flag=bridge|private|vepa (default bridge).
	optFlag = "ipvlan_flag"
	// -o mtu=N: the MTU of every container interface on the network.
	optMTU = "mtu"
	// -o com.docker.network.driver.mtu=N: Docker's generic spelling of -o mtu.
	optDockerMTU = "com.docker.network.driver.mtu"
	// -o announce=host|subnet|none (default host; none on an internal network).
	optAnnounce = "announce"
	// -o communities=65000:100,65000:200 (also --driver-opt per container).
	optCommunities = "communities"
	// -o large_communities=65000:1:2 (also --driver-opt per container).
	optLargeCommunities = "large_communities"
)

// Keys Docker itself sets in CreateNetworkRequest.Options and in endpoint
// options.
const (
	dockerGeneric    = "com.docker.network.generic"
	dockerEnableIPv6 = "com.docker.network.enable_ipv6"
	dockerEnableIPv4 = "com.docker.network.enable_ipv4"
	dockerInternal   = "com.docker.network.internal"
	dockerMAC        = "com.docker.network.endpoint.macaddress"
	// dockerIfName is the container interface name a user chose (Docker
	// 28: --network name=N,driver-opt=com.docker.network.endpoint.ifname=X).
	dockerIfName = "com.docker.network.endpoint.ifname"
	// dockerPrefix marks keys Docker adds on its own (port maps, exposed
	// ports, sysctls): none of them concern a routed network, and rejecting
	// them would break every `docker run -p`.
	dockerPrefix = "com.docker."
)

const (
	maxVLANID = 4094
	minMTU    = 68   // IPv4's minimum
	minMTU6   = 1280 // IPv6's minimum
	maxMTU    = 65535
)

// optionErr is a rejected option, as the docker CLI shows it.
func optionErr(option, value, format string, args ...any) *badvalue.Error {
	return badvalue.Errorf("ipvlan-bgp: option", option, value, format, args...)
}

// ipvlanMode and ipvlanFlag are kept as the user's words; links.go maps them
// to the kernel's numbers.
type ipvlanMode string

const (
	modeL2  ipvlanMode = "l2"
	modeL3  ipvlanMode = "l3"
	modeL3S ipvlanMode = "l3s"
)

type ipvlanFlag string

const (
	flagBridge  ipvlanFlag = "bridge"
	flagPrivate ipvlanFlag = "private"
	flagVEPA    ipvlanFlag = "vepa"
)

// announceMode says what a network puts into BGP.
type announceMode string

const (
	announceHost   announceMode = "host"
	announceSubnet announceMode = "subnet"
	announceNone   announceMode = "none"
)

// networkConfig is a network's options, parsed and validated once.
type networkConfig struct {
	Parent    string       `json:"parent,omitempty"`    // as given; "" = plugin-owned dummy
	ParentNIC string       `json:"parentNIC,omitempty"` // the NIC under a VLAN parent
	VLAN      int          `json:"vlan,omitempty"`
	Mode      ipvlanMode   `json:"mode"`
	Flag      ipvlanFlag   `json:"flag"`
	MTU       int          `json:"mtu,omitempty"` // 0 = the parent's
	Announce  announceMode `json:"announce"`
	Internal  bool         `json:"internal,omitempty"`
	communityOptions
}

// communityOptions is the part of the options shared by networks (-o) and
// containers (--driver-opt).
type communityOptions struct {
	Communities      []string `json:"communities,omitempty"`
	LargeCommunities []string `json:"largeCommunities,omitempty"`
}

// parseNetworkOptions reads CreateNetworkRequest.Options: Docker's own
// top-level keys and the user's -o map under com.docker.network.generic.
func parseNetworkOptions(opts map[string]any) (networkConfig, error) {
	internal, err := boolOption(opts, dockerInternal)
	if err != nil {
		return networkConfig{}, err
	}
	for _, key := range []string{dockerEnableIPv4, dockerEnableIPv6} {
		if _, err := boolOption(opts, key); err != nil {
			return networkConfig{}, err
		}
	}
	generic, err := stringMap(opts[dockerGeneric], dockerGeneric)
	if err != nil {
		return networkConfig{}, err
	}
	cfg := networkConfig{Mode: modeL3, Flag: flagBridge, Internal: internal}
	for key, value := range generic {
		if err := cfg.set(key, value); err != nil {
			return networkConfig{}, err
		}
	}
	if err := cfg.resolveMTU(generic); err != nil {
		return networkConfig{}, err
	}
	return cfg, cfg.finish(generic)
}

// set applies one -o option.
func (c *networkConfig) set(key, value string) error {
	var err error
	switch key {
	case optParent:
		c.Parent, c.ParentNIC, c.VLAN, err = parseParent(value)
	case optMode:
		c.Mode, err = oneOf(key, value, modeL3, modeL3S, modeL2)
	case optFlag:
		c.Flag, err = oneOf(key, value, flagBridge, flagPrivate, flagVEPA)
	case optAnnounce:
		c.Announce, err = oneOf(key, value, announceHost, announceSubnet, announceNone)
	case optCommunities, optLargeCommunities:
		err = c.communityOptions.set(key, value)
	case optMTU, optDockerMTU:
		// Both spellings are read together in resolveMTU.
	default:
		return optionErr(key, value, "unknown option; known: %s", strings.Join(knownNetworkOptions, ", "))
	}
	return err
}

var knownNetworkOptions = []string{optParent, optMode, optFlag, optMTU, optAnnounce, optCommunities, optLargeCommunities}

// resolveMTU accepts the MTU under either spelling; both must agree.
func (c *networkConfig) resolveMTU(generic map[string]string) error {
	for _, key := range []string{optMTU, optDockerMTU} {
		value, ok := generic[key]
		if !ok {
			continue
		}
		mtu, err := strconv.Atoi(value)
		if err != nil || mtu < minMTU || mtu > maxMTU {
			return optionErr(key, value, "want a number from %d to %d", minMTU, maxMTU)
		}
		if c.MTU != 0 && c.MTU != mtu {
			return optionErr(key, value, "disagrees with %s=%d", optMTU, c.MTU)
		}
		c.MTU = mtu
	}
	return nil
}

// finish checks the options against each other and fills defaults.
func (c *networkConfig) finish(generic map[string]string) error {
	if c.Internal && c.Parent != "" {
		return optionErr(optParent, c.Parent, "an internal network gets its own dummy parent; drop --internal or the parent")
	}
	if c.Parent == "" {
		c.Internal = true
	}
	switch {
	case c.Announce == "" && c.Internal:
		c.Announce = announceNone
	case c.Announce == "":
		c.Announce = announceHost
	case c.Internal && c.Announce != announceNone:
		return optionErr(optAnnounce, string(c.Announce), "an internal network (no parent, or --internal) is not reachable from outside; use none")
	}
	if c.Announce == announceNone && (len(c.Communities) > 0 || len(c.LargeCommunities) > 0) {
		key := optCommunities
		if len(c.Communities) == 0 {
			key = optLargeCommunities
		}
		return optionErr(key, generic[key], "the network announces nothing (announce=none)")
	}
	return c.communityOptions.checkSize(communityOptions{}, func(key string) string { return generic[key] })
}

// parseParent splits NIC.VID. A name whose suffix is not a number is a plain
// NIC (interface names may contain dots).
func parseParent(value string) (parent, nic string, vid int, err error) {
	var suffix string
	if err := checkIfName(value); err != nil {
		return "", "", 0, optionErr(optParent, value, "%s", err)
	}
	dot := strings.LastIndexByte(value, '.')
	if dot < 0 || !isDigits(value[dot+1:]) {
		nic, suffix = value, ""
	} else {
		nic, suffix = value[:dot], value[dot+1:]
	}
	if nic == "lo" {
		return "", "", 0, optionErr(optParent, value, "the loopback interface cannot carry ipvlan children")
	}
	if suffix == "" {
		return value, "", 0, nil
	}
	vid, err = strconv.Atoi(suffix)
	if err != nil || vid < 1 || vid > maxVLANID {
		return "", "", 0, optionErr(optParent, value, "VLAN ID %s is outside 1-%d", suffix, maxVLANID)
	}
	if nic == "" {
		return "", "", 0, optionErr(optParent, value, "no NIC before the VLAN ID")
	}
	return value, nic, vid, nil
}

// checkIfName applies the kernel's rules for an interface name.
func checkIfName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty interface name")
	case len(name) > 15:
		return fmt.Errorf("interface names are at most 15 characters")
	case name == "." || name == "..":
		return fmt.Errorf("not an interface name")
	case strings.ContainsAny(name, "/: \t\n"):
		return fmt.Errorf("interface names cannot contain '/', ':' or spaces")
	}
	return nil
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func oneOf[T ~string](key, value string, allowed ...T) (T, error) {
	if slices.Contains(allowed, T(value)) {
		return T(value), nil
	}
	words := make([]string, len(allowed))
	for i, a := range allowed {
		words[i] = string(a)
	}
	return "", optionErr(key, value, "want one of %s", strings.Join(words, ", "))
}

// set applies communities or large_communities.
func (c *communityOptions) set(key, value string) error {
	parse := route.ParseCommunities
	target := &c.Communities
	if key == optLargeCommunities {
		parse, target = route.ParseLargeCommunities, &c.LargeCommunities
	}
	list, err := parse(value)
	if err != nil {
		return optionErr(key, value, "%s", err)
	}
	*target = list
	return nil
}

// checkSize refuses communities that, with inherited (the network's, for a
// container), would not fit one BGP UPDATE; value gives the user's text of
// an option.
func (c communityOptions) checkSize(inherited communityOptions, value func(key string) string) error {
	communities := union(inherited.Communities, c.Communities)
	large := union(inherited.LargeCommunities, c.LargeCommunities)
	err := route.CheckCommunitySize(communities, large)
	if err == nil {
		return nil
	}
	// Blame what the user gave here; of both, the one taking more room.
	key := optCommunities
	if value(optCommunities) == "" || (value(optLargeCommunities) != "" && 12*len(large) > 4*len(communities)) {
		key = optLargeCommunities
	}
	return optionErr(key, value(key), "%s", err)
}

// endpointConfig is a container's --driver-opt values, parsed once.
type endpointConfig struct {
	communityOptions
	// IfName is the interface name the user chose in the container; ""
	// lets Docker name it (eth0, eth1, ...).
	IfName string `json:"ifname,omitempty"`
}

// parseEndpointOptions reads CreateEndpointRequest.Options or
// JoinRequest.Options. Docker puts --driver-opt KEY=VALUE there as plain keys,
// next to keys of its own (com.docker.*), which are skipped except a MAC
// address, which ipvlan cannot honour.
func parseEndpointOptions(opts map[string]any) (endpointConfig, error) {
	var cfg endpointConfig
	for key, raw := range opts {
		switch key {
		case dockerMAC:
			if mac, isString := raw.(string); raw != nil && !(isString && mac == "") {
				return cfg, optionErr("mac-address", fmt.Sprint(raw), "ipvlan interfaces share the parent's MAC address; remove --mac-address")
			}
			continue
		case dockerIfName:
			name, _ := raw.(string)
			if err := checkIfName(name); err != nil {
				return cfg, optionErr(key, fmt.Sprint(raw), "%s", err)
			}
			cfg.IfName = name
			continue
		}
		if strings.HasPrefix(key, dockerPrefix) {
			continue
		}
		value, ok := raw.(string)
		if !ok {
			return cfg, optionErr(key, fmt.Sprint(raw), "want a string, got %T", raw)
		}
		if key != optCommunities && key != optLargeCommunities {
			return cfg, optionErr(key, value, "unknown --driver-opt; known: %s, %s", optCommunities, optLargeCommunities)
		}
		if err := cfg.set(key, value); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// boolOption reads one of Docker's boolean keys; absent is false.
func boolOption(opts map[string]any, key string) (bool, error) {
	raw, ok := opts[key]
	if !ok || raw == nil {
		return false, nil
	}
	switch v := raw.(type) {
	case bool:
		return v, nil
	case string:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, optionErr(key, v, "want true or false")
		}
		return b, nil
	}
	return false, optionErr(key, fmt.Sprint(raw), "want true or false, got %T", raw)
}

// stringMap reads the -o map; its values must all be strings.
func stringMap(raw any, key string) (map[string]string, error) {
	if raw == nil {
		return nil, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, optionErr(key, fmt.Sprint(raw), "want a map of options, got %T", raw)
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return nil, optionErr(k, fmt.Sprint(v), "want a string, got %T", v)
		}
		out[k] = s
	}
	return out, nil
}

// pool is one subnet of a network and its gateway (zero when Docker gave
// none).
type pool struct {
	Prefix  netip.Prefix `json:"prefix"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
}

// parsePools reads IPv4Data or IPv6Data. want4 says which family the list
// must hold.
func parsePools(pools []poolData, want4 bool) ([]pool, error) {
	var out []pool
	for _, p := range pools {
		prefix, err := netip.ParsePrefix(p.Pool)
		if err != nil || prefix.Addr().Is4() != want4 || prefix.Addr().Zone() != "" {
			return nil, optionErr("subnet", p.Pool, "not an %s subnet", familyName(want4))
		}
		parsed := pool{Prefix: prefix.Masked()}
		if p.Gateway != "" {
			gw, err := parseAddr(p.Gateway)
			if err != nil || !parsed.Prefix.Contains(gw) {
				return nil, optionErr("gateway", p.Gateway, "not an address inside %s", parsed.Prefix)
			}
			parsed.Gateway = gw
		}
		out = append(out, parsed)
	}
	return out, nil
}

// poolData is the part of IPAMData the driver reads (nil entries in a
// malformed request are skipped by the caller).
type poolData struct {
	Pool    string
	Gateway string
}

// parseAddr takes an address with or without a prefix length: Docker sends
// gateways as CIDR strings.
func parseAddr(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), nil
	}
	return netip.ParseAddr(s)
}

func familyName(is4 bool) string {
	if is4 {
		return "IPv4"
	}
	return "IPv6"
}

// swarmIDLen is the length of a Swarm object's ID: swarmkit writes 128
// random bits in base 36, padded to 25 digits and letters. A network created
// with --scope swarm keeps that ID on every node, and the node's engine
// creates it in the driver under it.
const swarmIDLen = 25

// isSwarmID: id is a Swarm object's ID (a swarm network's), not a Docker
// engine's.
func isSwarmID(id string) bool {
	return len(id) == swarmIDLen && strings.Trim(id, "0123456789abcdefghijklmnopqrstuvwxyz") == ""
}

// checkDockerID refuses IDs that cannot be Docker's: link names are cut from
// them. Docker's own IDs are hexadecimal, a swarm network's base 36.
func checkDockerID(kind, id string) error {
	hex := len(id) >= 12 && strings.Trim(id, "0123456789abcdef") == ""
	if !hex && !isSwarmID(id) {
		return fmt.Errorf("ipvlan-bgp: %s ID %q is not a Docker ID (at least 12 lower-case hexadecimal digits, or a Swarm ID of %d lower-case letters and digits)", kind, id, swarmIDLen)
	}
	return nil
}
