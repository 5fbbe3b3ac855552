// Package config reads and validates the BGP speaker's settings: the BGP_*
// env vars (see EnvASN and the constants after it) and an optional TOML file
// (BGP_CONFIG_FILE, default /state/bgp.toml). Env wins for scalars, the file
// for lists. A file, every key optional:
//
//	asn = 65010                         # scalars as in env: asn, router-id,
//	router-id = "192.0.2.9"             # listen-port, graceful-restart,
//	restart-time = "120s"               # restart-time, import-default,
//	export-allow = ["10.1.0.0/16 le 32"] # api-socket, api-tcp
//	import-allow = ["10.0.0.0/8"]
//
//	[[peer-group]]
//	name = "leaves"
//	remote-as = "external"              # a number, "external" or "internal"
//	password = "md5-secret"
//	hold-time = "9s"                    # keepalive defaults to a third
//	families = ["ipv4-unicast", "ipv6-unicast"]
//	multihop-ttl = 2
//	max-prefixes = 1000
//	bfd = true                          # BFD (RFC 5880) on every session:
//	bfd-min-rx = 300                    # milliseconds, or "300ms"
//	bfd-min-tx = 300
//	bfd-multiplier = 3                  # down after 3 missed packets
//
//	[[neighbor]]
//	address = "10.0.0.1"                # or interface = "eth1" (unnumbered)
//	peer-group = "leaves"               # then its own keys override the group's
//	keepalive = 2
//
//	[[dynamic-neighbor]]
//	prefix = "10.0.9.0/24"              # passive: accept sessions from here
//	peer-group = "leaves"
package config

import (
	"fmt"
	"io"
	"net/netip"
	"time"
)

// Config is the validated speaker configuration. Load builds it from
// the plugin's environment and an optional TOML file.
type Config struct {
	ASN uint32
	// RouterID is the BGP identifier; the zero Addr means "compute it at
	// Start" with DefaultRouterID.
	RouterID netip.Addr
	// ListenPort is the TCP port for incoming sessions; 0 turns listening
	// off (the speaker only connects out).
	ListenPort uint16

	Neighbors        []Neighbor
	PeerGroups       []PeerGroup
	DynamicNeighbors []DynamicNeighbor

	GracefulRestart GracefulRestart

	// ExportAllow narrows what may be announced; empty allows every prefix
	// the plugin owns that is at least ExportMinLen long.
	ExportAllow []PrefixRule
	// ExportMinLen is, per family, the shortest prefix announced unless
	// ExportAllow names it: a default route or a /1 from one Docker host
	// would draw the whole fabric's traffic to it.
	ExportMinLen MinLen
	Import       ImportPolicy

	// APISocket is the unix socket serving GoBGP's gRPC API; "" turns it off.
	APISocket string
	// APITCP is an optional host:port serving the same API over TCP.
	APITCP string
	// APITCPRemote lets APITCP listen on an address other than loopback.
	// The API has no authentication of its own: on loopback only root's
	// connections are relayed, on any other address anyone who reaches it.
	APITCPRemote bool
}

// MinLen is a prefix length per family.
type MinLen struct {
	V4, V6 int
}

// Of returns the length for p's family.
func (m MinLen) Of(p netip.Prefix) int {
	if p.Addr().Is4() {
		return m.V4
	}
	return m.V6
}

// ExportRules is what may be announced: the export allow list, or by default
// every prefix at least ExportMinLen long.
func (c Config) ExportRules() []PrefixRule {
	if len(c.ExportAllow) > 0 {
		return c.ExportAllow
	}
	return []PrefixRule{
		{Prefix: netip.PrefixFrom(netip.IPv4Unspecified(), 0), MinLen: c.ExportMinLen.V4, MaxLen: 32},
		{Prefix: netip.PrefixFrom(netip.IPv6Unspecified(), 0), MinLen: c.ExportMinLen.V6, MaxLen: 128},
	}
}

// GracefulRestart holds the RFC 4724 settings shared by every neighbour.
type GracefulRestart struct {
	Enabled     bool
	RestartTime time.Duration // how long peers keep our routes after we vanish
}

// ImportPolicy says which learned routes the importer may install in the
// kernel. It lives here (not in import.go) so the config owns every setting.
type ImportPolicy struct {
	Allow []netip.Prefix // empty: every learned prefix
	// AllowDefault lets in default routes and their halves (0.0.0.0/1,
	// 128.0.0.0/1, ::/1, 8000::/1, which override a default route).
	AllowDefault bool
	// AllowConnected lets in routes inside the host's own connected subnets
	// (uplinks, management): by default a peer cannot pull the host's
	// traffic to its neighbours away from the link.
	AllowConnected bool
}

// Family is an address family a session carries.
type Family string

// The families the speaker supports.
const (
	IPv4Unicast Family = "ipv4-unicast"
	IPv6Unicast Family = "ipv6-unicast"
)

// PeerSettings are what a neighbour, a peer group and the env defaults share.
type PeerSettings struct {
	// RemoteAS is the peer's AS; 0 means "external": any AS, learned from the
	// peer's OPEN (FRR's `remote-as external`).
	RemoteAS    uint32
	Password    Secret // TCP MD5 (RFC 2385); "" means none
	MultihopTTL uint8  // 0: the peer is directly connected
	HoldTime    time.Duration
	Keepalive   time.Duration
	// Families the session carries; nil means the session's own: IPv4 or
	// IPv6 by the neighbour's address, both for unnumbered neighbours.
	// GoBGP sends IPv6 routes over an IPv4 session with an IPv4-mapped
	// next hop (::ffff:a.b.c.d) no peer can install, so "both" is only the
	// default where it works.
	Families    []Family
	MaxPrefixes uint32 // 0: no limit
	BFD         BFD
}

// BFD is a session's liveness check (RFC 5880, single hop as RFC 5881):
// when the peer's BFD packets stop for Multiplier times the agreed receive
// interval, the session goes down at once instead of at the end of its
// hold time, so traffic leaves an uplink that fails silently.
type BFD struct {
	Enabled bool
	// MinRx is the shortest interval at which we accept the peer's packets,
	// MinTx the one at which we would like to send ours; the peer's own
	// figures count too (the slower side wins).
	MinRx, MinTx time.Duration
	Multiplier   uint8
}

// Neighbor is one configured peer: by address, or by interface (unnumbered,
// over the IPv6 link-local address of the only neighbour on that link).
type Neighbor struct {
	Address   netip.Addr
	Interface string
	PeerGroup string // informational: its settings are already folded in
	PeerSettings
}

// PeerGroup is a named set of peer settings, used by neighbours and by
// dynamic neighbours.
type PeerGroup struct {
	Name string
	PeerSettings
}

// DynamicNeighbor accepts passive sessions from any address in Prefix, with
// the settings of PeerGroup.
type DynamicNeighbor struct {
	Prefix    netip.Prefix
	PeerGroup string
}

// PrefixRule matches a prefix inside Prefix whose length is in
// [MinLen, MaxLen], like a route-map prefix-list entry with ge/le.
type PrefixRule struct {
	Prefix         netip.Prefix
	MinLen, MaxLen int
}

// Contains reports whether p falls under the rule.
func (r PrefixRule) Contains(p netip.Prefix) bool {
	return r.Prefix.Addr().Is4() == p.Addr().Is4() &&
		p.Bits() >= r.MinLen && p.Bits() <= r.MaxLen &&
		r.Prefix.Contains(p.Addr())
}

// String renders the rule in the syntax ParsePrefixRule reads.
func (r PrefixRule) String() string {
	return fmt.Sprintf("%s ge %d le %d", r.Prefix, r.MinLen, r.MaxLen)
}

// Name identifies the neighbour in logs and errors: its address or
// interface.
func (n Neighbor) Name() string {
	if n.Interface != "" {
		return n.Interface
	}
	return n.Address.String()
}

// String describes the neighbour without its password.
func (n Neighbor) String() string {
	as := "external"
	if n.RemoteAS != 0 {
		as = fmt.Sprint(n.RemoteAS)
	}
	return fmt.Sprintf("%s (AS %s, md5 %t)", n.Name(), as, n.Password != "")
}

// Secret is a password: every fmt verb, JSON and text encoding print it
// hidden, so logging a config never leaks it.
type Secret string

const hidden = "<hidden>"

// Format hides the secret from every fmt verb (%v, %+v, %#v, %s, %q).
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, hidden) }

// MarshalText hides the secret from encoders (logrus' JSON formatter).
func (Secret) MarshalText() ([]byte, error) { return []byte(hidden), nil }
