package config

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Opt is one setting as written in the file or env, before validation. The
// zero Opt is "not set": the value is inherited.
type Opt struct {
	Value string
	Set   bool
}

// Text returns a set Opt holding s.
func Text(s string) Opt { return Opt{Value: s, Set: true} }

// UnmarshalTOML accepts strings, numbers and booleans alike, so
// `remote-as = 65001` and `remote-as = "external"` both work.
func (o *Opt) UnmarshalTOML(v any) error {
	switch v.(type) {
	case string, int64, bool:
		*o = Text(fmt.Sprint(v))
		return nil
	}
	return fmt.Errorf("want a string, number or boolean, not %T", v)
}

// PeerSpec is a neighbour's or peer group's settings as written; unset
// fields inherit from the peer group, then from the BGP_* env defaults.
type PeerSpec struct {
	RemoteAS    Opt      `toml:"remote-as"`
	Password    Opt      `toml:"password"`
	MultihopTTL Opt      `toml:"multihop-ttl"`
	HoldTime    Opt      `toml:"hold-time"`
	Keepalive   Opt      `toml:"keepalive"`
	Families    []string `toml:"families"`
	MaxPrefixes Opt      `toml:"max-prefixes"`

	BFD           Opt `toml:"bfd"`
	BFDMinRx      Opt `toml:"bfd-min-rx"`
	BFDMinTx      Opt `toml:"bfd-min-tx"`
	BFDMultiplier Opt `toml:"bfd-multiplier"`
}

// NeighborSpec is a neighbour as written: exactly one of Address and
// Interface.
type NeighborSpec struct {
	Address   string `toml:"address"`
	Interface string `toml:"interface"`
	PeerGroup string `toml:"peer-group"`
	PeerSpec
}

// Linux caps TCP MD5 keys at 80 bytes (TCP_MD5SIG_MAXKEYLEN).
const maxPasswordLen = 80

// RFC 4271 4.2 also allows a hold time of 0 (no keepalives), but GoBGP
// reads 0 as "use the default", so it is refused rather than ignored.
const (
	minHoldTime = 3 * time.Second
	maxHoldTime = math.MaxUint16 * time.Second
)

// FRR's bounds for BFD intervals.
const (
	minBFDInterval = 10 * time.Millisecond
	maxBFDInterval = 60 * time.Second
)

// apply overlays the set fields of spec on base. setting names a field for
// errors (an env var or a file key path).
func (spec PeerSpec) apply(base PeerSettings, localAS uint32, setting func(key string) string) (PeerSettings, error) {
	out := base
	var err error
	if spec.RemoteAS.Set {
		if out.RemoteAS, err = parseRemoteAS(setting("remote-as"), spec.RemoteAS.Value, localAS); err != nil {
			return out, err
		}
	}
	if spec.Password.Set {
		if len(spec.Password.Value) > maxPasswordLen {
			return out, badValue(setting("password"), hidden, "an MD5 password is at most %d bytes", maxPasswordLen)
		}
		out.Password = Secret(spec.Password.Value)
	}
	if spec.MultihopTTL.Set {
		ttl, err := parseUint(setting("multihop-ttl"), spec.MultihopTTL.Value, 0, math.MaxUint8)
		if err != nil {
			return out, err
		}
		out.MultihopTTL = uint8(ttl)
	}
	if spec.MaxPrefixes.Set {
		n, err := parseUint(setting("max-prefixes"), spec.MaxPrefixes.Value, 0, math.MaxUint32)
		if err != nil {
			return out, err
		}
		out.MaxPrefixes = uint32(n)
	}
	if spec.Families != nil {
		if out.Families, err = parseFamilies(setting("families"), spec.Families); err != nil {
			return out, err
		}
	}
	if out, err = spec.applyTimers(out, setting); err != nil {
		return out, err
	}
	return spec.applyBFD(out, setting)
}

// applyTimers sets hold time and keepalive; a hold time given alone brings
// its keepalive to a third of it, as RFC 4271 suggests.
func (spec PeerSpec) applyTimers(out PeerSettings, setting func(string) string) (PeerSettings, error) {
	var err error
	if spec.HoldTime.Set {
		if out.HoldTime, err = parseTime(setting("hold-time"), spec.HoldTime.Value, seconds, minHoldTime, maxHoldTime); err != nil {
			return out, err
		}
		out.Keepalive = out.HoldTime / 3
	}
	if spec.Keepalive.Set {
		if out.Keepalive, err = parseTime(setting("keepalive"), spec.Keepalive.Value, seconds, time.Second, maxHoldTime); err != nil {
			return out, err
		}
	}
	if out.Keepalive > out.HoldTime/3 {
		return out, badValue(setting("keepalive"), out.Keepalive.String(),
			"keepalive must be at most a third of the hold time (%s)", out.HoldTime)
	}
	return out, nil
}

// applyBFD sets the BFD keys. GoBGP runs single-hop BFD only (RFC 5881),
// whose packets a multihop peer would drop (TTL 255 is required), so the
// two together are refused rather than left to flap.
func (spec PeerSpec) applyBFD(out PeerSettings, setting func(string) string) (PeerSettings, error) {
	var err error
	if spec.BFD.Set {
		if out.BFD.Enabled, err = parseBool(setting("bfd"), spec.BFD.Value); err != nil {
			return out, err
		}
	}
	if spec.BFDMinRx.Set {
		if out.BFD.MinRx, err = parseTime(setting("bfd-min-rx"), spec.BFDMinRx.Value, millis, minBFDInterval, maxBFDInterval); err != nil {
			return out, err
		}
	}
	if spec.BFDMinTx.Set {
		if out.BFD.MinTx, err = parseTime(setting("bfd-min-tx"), spec.BFDMinTx.Value, millis, minBFDInterval, maxBFDInterval); err != nil {
			return out, err
		}
	}
	if spec.BFDMultiplier.Set {
		n, err := parseUint(setting("bfd-multiplier"), spec.BFDMultiplier.Value, 1, math.MaxUint8)
		if err != nil {
			return out, err
		}
		out.BFD.Multiplier = uint8(n)
	}
	if out.BFD.Enabled && out.MultihopTTL > 0 {
		return out, badValue(setting("bfd"), "true", "BFD is single-hop here (RFC 5881): not with multihop-ttl %d", out.MultihopTTL)
	}
	return out, nil
}

// NewNeighbor validates a neighbour as written and folds in its settings:
// base (the env defaults), then its peer group's, then its own. groups are
// the already-validated peer groups; setting names a field for errors.
func NewNeighbor(spec NeighborSpec, base PeerSettings, groups []PeerGroup, localAS uint32,
	setting func(key string) string) (Neighbor, error) {
	n := Neighbor{PeerGroup: spec.PeerGroup}
	if err := n.setEndpoint(spec, setting); err != nil {
		return n, err
	}
	if spec.PeerGroup != "" {
		g, ok := findGroup(groups, spec.PeerGroup)
		if !ok {
			return n, badValue(setting("peer-group"), spec.PeerGroup, "no such peer group")
		}
		base = g.PeerSettings
	}
	var err error
	if n.PeerSettings, err = spec.PeerSpec.apply(base, localAS, setting); err != nil {
		return n, err
	}
	if !spec.RemoteAS.Set && spec.PeerGroup == "" {
		return n, badValue(setting("remote-as"), "", `required: an AS number, "external" or "internal"`)
	}
	return n, nil
}

func (n *Neighbor) setEndpoint(spec NeighborSpec, setting func(string) string) error {
	switch {
	case (spec.Address == "") == (spec.Interface == ""):
		return badValue(setting("address"), spec.Address+spec.Interface, "set exactly one of address and interface")
	case spec.Address != "":
		a, err := netip.ParseAddr(strings.TrimSpace(spec.Address))
		if err != nil || a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" {
			return badValue(setting("address"), spec.Address, "not a unicast IPv4 or IPv6 address (for link-local peers use interface)")
		}
		n.Address = a.Unmap()
	default:
		if _, err := net.InterfaceByName(spec.Interface); err != nil {
			return badValue(setting("interface"), spec.Interface, "unknown interface: %v", err)
		}
		n.Interface = spec.Interface
	}
	return nil
}

func findGroup(groups []PeerGroup, name string) (PeerGroup, bool) {
	for _, g := range groups {
		if g.Name == name {
			return g, true
		}
	}
	return PeerGroup{}, false
}
