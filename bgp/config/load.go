package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/unixsock"
)

// The plugin settings (`docker plugin set ipvlan-bgp BGP_ASN=65001`).
// Scalars set in the env win over the file; lists (neighbours, peer groups,
// allow lists) come from the file when it has them, else from the env.
const (
	// EnvASN is the local AS, 1..4294967295. Default 64512 (the first
	// private 2-byte AS).
	EnvASN = "BGP_ASN"
	// EnvRouterID is the BGP identifier (IPv4). Default: the first IPv4
	// address of the default-route interface, else of the first up
	// non-loopback interface (DefaultRouterID), computed at Start.
	EnvRouterID = "BGP_ROUTER_ID"
	// EnvListenPort is the TCP port for incoming sessions. Default 179; 0
	// turns listening off.
	EnvListenPort = "BGP_LISTEN_PORT"
	// EnvNeighbors is a compact neighbour list: ADDRESS:AS or INTERFACE:AS,
	// comma separated, AS a number, "external" or "internal", e.g.
	// "10.0.0.1:65101,eth0:external,fd00::1:internal". Default none.
	EnvNeighbors = "BGP_NEIGHBORS"
	// EnvPassword is the TCP MD5 password of every neighbour that sets none.
	// Default none.
	EnvPassword = "BGP_PASSWORD"
	// EnvHoldTime is the hold time (seconds or "90s") of every neighbour that
	// sets none, 3..65535 s. Default 90s.
	EnvHoldTime = "BGP_HOLD_TIME"
	// EnvKeepalive is the keepalive interval, at most a third of the hold
	// time. Default: a third of the hold time.
	EnvKeepalive = "BGP_KEEPALIVE"
	// EnvMultihopTTL is the eBGP multihop TTL, 0..255. Default 0 (direct).
	EnvMultihopTTL = "BGP_MULTIHOP_TTL"
	// EnvFamilies lists the families each session carries
	// ("ipv4-unicast,ipv6-unicast"). Default: the session's own family,
	// both on unnumbered sessions (see PeerSettings.Families).
	EnvFamilies = "BGP_FAMILIES"
	// EnvMaxPrefixes caps the prefixes accepted per neighbour and family;
	// past it GoBGP ends the session. 0 is no limit. Default 1,500,000 (see
	// defaultMaxPrefixes).
	EnvMaxPrefixes = "BGP_MAX_PREFIXES"
	// EnvBFD turns BFD on for every neighbour that does not say otherwise.
	// Default false.
	EnvBFD = "BGP_BFD"
	// EnvBFDMinRx is the shortest interval at which BFD packets are
	// accepted from a peer, milliseconds ("300" or "300ms"), 10..60000.
	// Default 300.
	EnvBFDMinRx = "BGP_BFD_MIN_RX"
	// EnvBFDMinTx is the interval at which BFD packets would like to go
	// out, as EnvBFDMinRx. Default 300.
	EnvBFDMinTx = "BGP_BFD_MIN_TX"
	// EnvBFDMultiplier is how many BFD packets in a row may be missed
	// before the session goes down, 1..255. Default 3.
	EnvBFDMultiplier = "BGP_BFD_MULTIPLIER"
	// EnvGracefulRestart turns RFC 4724 graceful restart on or off. Default
	// true.
	EnvGracefulRestart = "BGP_GRACEFUL_RESTART"
	// EnvRestartTime is how long peers keep our routes while we restart,
	// 1..4095 s. Default 120s.
	EnvRestartTime = "BGP_RESTART_TIME"
	// EnvExportAllow narrows what is announced: prefix-list entries, comma
	// separated ("10.0.0.0/8 le 32,fd00::/8 within"). Default: every prefix
	// the plugin owns.
	EnvExportAllow = "BGP_EXPORT_ALLOW"
	// EnvExportMinV4Len and EnvExportMinV6Len are the shortest IPv4 and
	// IPv6 prefixes announced unless BGP_EXPORT_ALLOW names them, so a
	// network on 0.0.0.0/0 or 0.0.0.0/1 never reaches the fabric by
	// mistake. Default 16 and 48 (IPAM_DEFAULT_POOLS' ranges).
	EnvExportMinV4Len = "BGP_EXPORT_MIN_V4_LEN"
	EnvExportMinV6Len = "BGP_EXPORT_MIN_V6_LEN"
	// EnvImportAllow lists the prefixes whose learned routes (and their more
	// specifics) are installed in the kernel. Default: all.
	EnvImportAllow = "BGP_IMPORT_ALLOW"
	// EnvImportDefault lets learned default routes and their halves
	// (0.0.0.0/1, 128.0.0.0/1, ::/1, 8000::/1) into the kernel. Default
	// false.
	EnvImportDefault = "BGP_IMPORT_DEFAULT"
	// EnvImportConnected lets learned routes inside the host's connected
	// subnets (its uplinks' and management addresses) into the kernel.
	// Default false: a peer cannot divert traffic to the host's own
	// neighbours.
	EnvImportConnected = "BGP_IMPORT_CONNECTED"
	// EnvAPISocket is the root-only unix socket serving GoBGP's gRPC API;
	// "none" turns it off. Default /state/gobgp.sock (the plugin's propagated
	// mount, visible on the host).
	EnvAPISocket = "BGP_API_SOCKET"
	// EnvAPITCP also serves the API on IP:PORT, a loopback address unless
	// BGP_API_TCP_REMOTE is true; only root's connections are relayed on
	// loopback. Default off.
	EnvAPITCP = "BGP_API_TCP"
	// EnvAPITCPRemote lets BGP_API_TCP listen on a non-loopback address,
	// where anyone who reaches it can read the neighbours' passwords and
	// change what is announced. Default false.
	EnvAPITCPRemote = "BGP_API_TCP_REMOTE"
	// EnvConfigFile is the TOML file for what env cannot hold well (peer
	// groups, full neighbours, dynamic neighbours). Default /state/bgp.toml;
	// a missing default file is fine, a missing named file is an error.
	EnvConfigFile = "BGP_CONFIG_FILE"
)

const (
	defaultASN         = "64512"
	defaultConfigFile  = "/state/bgp.toml"
	defaultAPISocket   = "/state/gobgp.sock"
	defaultHoldTime    = 90 * time.Second
	defaultExportMinV4 = "16"
	defaultExportMinV6 = "48"
	// defaultMaxPrefixes is above a full Internet table per family (about
	// 1.05 million IPv4 and 0.25 million IPv6 routes in 2026, with room to
	// grow) and far above what a fabric sends a host, so only a runaway
	// peer (a leak, a redistribution loop) trips it, before its routes fill
	// the host's memory.
	defaultMaxPrefixes = 1_500_000
	// FRR's BFD defaults: a silent peer is down after 0.9 s.
	defaultBFDInterval   = 300 * time.Millisecond
	defaultBFDMultiplier = 3
	defaultRestartTime   = "120"
	// The restart time is a 12-bit field of the capability (RFC 4724 3).
	maxRestartTime = 4095 * time.Second
)

// fileConfig is the TOML file's layout; the package comment shows one.
type fileConfig struct {
	ASN             Opt `toml:"asn"`
	RouterID        Opt `toml:"router-id"`
	ListenPort      Opt `toml:"listen-port"`
	GracefulRestart Opt `toml:"graceful-restart"`
	RestartTime     Opt `toml:"restart-time"`
	ImportDefault   Opt `toml:"import-default"`
	ImportConnected Opt `toml:"import-connected"`
	ExportMinV4Len  Opt `toml:"export-min-v4-len"`
	ExportMinV6Len  Opt `toml:"export-min-v6-len"`
	APISocket       Opt `toml:"api-socket"`
	APITCP          Opt `toml:"api-tcp"`
	APITCPRemote    Opt `toml:"api-tcp-remote"`

	ExportAllow      []string             `toml:"export-allow"`
	ImportAllow      []string             `toml:"import-allow"`
	PeerGroups       []peerGroupSpec      `toml:"peer-group"`
	Neighbors        []NeighborSpec       `toml:"neighbor"`
	DynamicNeighbors []dynamicNeighborDef `toml:"dynamic-neighbor"`

	path string
}

type peerGroupSpec struct {
	Name string `toml:"name"`
	PeerSpec
}

type dynamicNeighborDef struct {
	Prefix    string `toml:"prefix"`
	PeerGroup string `toml:"peer-group"`
}

// Load reads the BGP_* settings through getenv (os.Getenv in the plugin) and
// the optional TOML file, and validates everything. Errors name the env var
// or file key and the value.
func Load(getenv func(string) string) (Config, error) {
	file, err := readConfigFile(getenv(EnvConfigFile))
	if err != nil {
		return Config{}, err
	}
	l := loader{getenv: getenv, file: file}
	var cfg Config
	if err := l.globals(&cfg); err != nil {
		return Config{}, err
	}
	if err := l.peers(&cfg); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func readConfigFile(path string) (fileConfig, error) {
	explicit := path != ""
	if !explicit {
		path = defaultConfigFile
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return fileConfig{}, nil
	}
	if err != nil {
		return fileConfig{}, fmt.Errorf("%s: read BGP config file: %w", EnvConfigFile, err)
	}
	return decodeConfigFile(path, string(data))
}

func decodeConfigFile(path, data string) (fileConfig, error) {
	var f fileConfig
	meta, err := toml.Decode(data, &f)
	if err != nil {
		return fileConfig{}, fmt.Errorf("BGP config file %s: %w", path, err)
	}
	if extra := meta.Undecoded(); len(extra) > 0 {
		return fileConfig{}, fmt.Errorf("BGP config file %s: unknown key %q", path, extra[0].String())
	}
	f.path = path
	return f, nil
}

// loader merges env and file: env wins for scalars, the file for lists.
type loader struct {
	getenv func(string) string
	file   fileConfig
}

// scalar returns the raw value of a scalar setting and the name to blame in
// errors: the env var if set, else the file key if set, else the default.
func (l loader) scalar(env string, file Opt, fileKey, def string) (setting, value string) {
	if v := strings.TrimSpace(l.getenv(env)); v != "" {
		return env, v
	}
	if file.Set {
		return l.file.path + ": " + fileKey, file.Value
	}
	return env, def
}

// list returns a list setting: the file's when it has the key, else the
// env var's comma-separated items.
func (l loader) list(env string, file []string, fileKey string) (setting string, items []string) {
	if file != nil {
		return l.file.path + ": " + fileKey, file
	}
	return env, splitList(l.getenv(env))
}

func (l loader) globals(cfg *Config) error {
	var err error
	if cfg.ASN, err = parseASN(l.scalar(EnvASN, l.file.ASN, "asn", defaultASN)); err != nil {
		return err
	}
	if setting, v := l.scalar(EnvRouterID, l.file.RouterID, "router-id", ""); v != "" {
		if cfg.RouterID, err = parseRouterID(setting, v); err != nil {
			return err
		}
	}
	setting, value := l.scalar(EnvListenPort, l.file.ListenPort, "listen-port", "179")
	port, err := parseUint(setting, value, 0, math.MaxUint16)
	if err != nil {
		return err
	}
	cfg.ListenPort = uint16(port)
	if cfg.GracefulRestart.Enabled, err = parseBool(l.scalar(EnvGracefulRestart, l.file.GracefulRestart, "graceful-restart", "true")); err != nil {
		return err
	}
	setting, value = l.scalar(EnvRestartTime, l.file.RestartTime, "restart-time", defaultRestartTime)
	if cfg.GracefulRestart.RestartTime, err = parseTime(setting, value, seconds, time.Second, maxRestartTime); err != nil {
		return err
	}
	if err := l.exportSettings(cfg); err != nil {
		return err
	}
	if err := l.importSettings(cfg); err != nil {
		return err
	}
	return l.apiSettings(cfg)
}

func (l loader) exportSettings(cfg *Config) error {
	var err error
	if cfg.ExportAllow, err = parsePrefixRules(l.list(EnvExportAllow, l.file.ExportAllow, "export-allow")); err != nil {
		return err
	}
	setting, value := l.scalar(EnvExportMinV4Len, l.file.ExportMinV4Len, "export-min-v4-len", defaultExportMinV4)
	v4, err := parseUint(setting, value, 0, 32)
	if err != nil {
		return err
	}
	setting, value = l.scalar(EnvExportMinV6Len, l.file.ExportMinV6Len, "export-min-v6-len", defaultExportMinV6)
	v6, err := parseUint(setting, value, 0, 128)
	if err != nil {
		return err
	}
	cfg.ExportMinLen = MinLen{V4: int(v4), V6: int(v6)}
	return nil
}

func (l loader) importSettings(cfg *Config) error {
	var err error
	if cfg.Import.AllowDefault, err = parseBool(l.scalar(EnvImportDefault, l.file.ImportDefault, "import-default", "false")); err != nil {
		return err
	}
	if cfg.Import.AllowConnected, err = parseBool(l.scalar(EnvImportConnected, l.file.ImportConnected, "import-connected", "false")); err != nil {
		return err
	}
	cfg.Import.Allow, err = parsePrefixes(l.list(EnvImportAllow, l.file.ImportAllow, "import-allow"))
	return err
}

func (l loader) apiSettings(cfg *Config) error {
	setting, sock := l.scalar(EnvAPISocket, l.file.APISocket, "api-socket", defaultAPISocket)
	switch {
	case sock == "none":
	case !strings.HasPrefix(sock, "/") || len(sock) > unixsock.MaxPath:
		return badValue(setting, sock, `want an absolute path of at most %d bytes, or "none"`, unixsock.MaxPath)
	default:
		cfg.APISocket = sock
	}
	var err error
	if cfg.APITCPRemote, err = parseBool(l.scalar(EnvAPITCPRemote, l.file.APITCPRemote, "api-tcp-remote", "false")); err != nil {
		return err
	}
	setting, addr := l.scalar(EnvAPITCP, l.file.APITCP, "api-tcp", "")
	if addr == "" {
		return nil
	}
	if cfg.APITCP, err = parseHostPort(setting, addr); err != nil {
		return err
	}
	if host, _, _ := net.SplitHostPort(addr); !cfg.APITCPRemote && !netip.MustParseAddr(host).IsLoopback() {
		return badValue(setting, addr, "the GoBGP API has no authentication: whoever reaches it reads the neighbours' passwords and changes what this host announces; "+
			"use 127.0.0.1 or [::1], or set %s=true to expose it", EnvAPITCPRemote)
	}
	return nil
}
