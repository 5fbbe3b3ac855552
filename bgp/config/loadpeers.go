package config

import (
	"errors"
	"fmt"
	"strings"
)

// envPeerKeys maps a peer setting's file key to the env var holding its
// default for every neighbour.
var envPeerKeys = map[string]string{
	"remote-as":      EnvNeighbors,
	"password":       EnvPassword,
	"multihop-ttl":   EnvMultihopTTL,
	"hold-time":      EnvHoldTime,
	"keepalive":      EnvKeepalive,
	"families":       EnvFamilies,
	"max-prefixes":   EnvMaxPrefixes,
	"bfd":            EnvBFD,
	"bfd-min-rx":     EnvBFDMinRx,
	"bfd-min-tx":     EnvBFDMinTx,
	"bfd-multiplier": EnvBFDMultiplier,
}

func (l loader) peers(cfg *Config) error {
	base, err := l.peerDefaults(cfg.ASN)
	if err != nil {
		return err
	}
	if cfg.PeerGroups, err = l.peerGroups(base, cfg.ASN); err != nil {
		return err
	}
	if l.file.Neighbors != nil {
		cfg.Neighbors, err = l.fileNeighbors(base, cfg)
	} else {
		cfg.Neighbors, err = ParseNeighbors(l.getenv(EnvNeighbors), base, cfg.ASN)
	}
	if err != nil {
		return err
	}
	cfg.DynamicNeighbors, err = l.dynamicNeighbors(cfg.PeerGroups)
	return err
}

// peerDefaults reads the env settings every neighbour inherits.
func (l loader) peerDefaults(localAS uint32) (PeerSettings, error) {
	builtin := PeerSettings{
		HoldTime:    defaultHoldTime,
		Keepalive:   defaultHoldTime / 3,
		MaxPrefixes: defaultMaxPrefixes,
		BFD:         BFD{MinRx: defaultBFDInterval, MinTx: defaultBFDInterval, Multiplier: defaultBFDMultiplier},
	}
	opt := func(env string) Opt {
		if v := l.getenv(env); v != "" {
			return Text(v)
		}
		return Opt{}
	}
	spec := PeerSpec{
		Password:      opt(EnvPassword),
		MultihopTTL:   opt(EnvMultihopTTL),
		HoldTime:      opt(EnvHoldTime),
		Keepalive:     opt(EnvKeepalive),
		Families:      splitList(l.getenv(EnvFamilies)),
		MaxPrefixes:   opt(EnvMaxPrefixes),
		BFD:           opt(EnvBFD),
		BFDMinRx:      opt(EnvBFDMinRx),
		BFDMinTx:      opt(EnvBFDMinTx),
		BFDMultiplier: opt(EnvBFDMultiplier),
	}
	return spec.apply(builtin, localAS, func(key string) string { return envPeerKeys[key] })
}

func (l loader) fileKey(section string, i int) func(string) string {
	return func(key string) string {
		return fmt.Sprintf("%s: %s[%d].%s", l.file.path, section, i, key)
	}
}

func (l loader) peerGroups(base PeerSettings, localAS uint32) ([]PeerGroup, error) {
	var out []PeerGroup
	for i, spec := range l.file.PeerGroups {
		setting := l.fileKey("peer-group", i)
		if spec.Name == "" {
			return nil, badValue(setting("name"), "", "a peer group needs a name")
		}
		if _, dup := findGroup(out, spec.Name); dup {
			return nil, badValue(setting("name"), spec.Name, "peer group defined twice")
		}
		if !spec.RemoteAS.Set {
			return nil, badValue(setting("remote-as"), "", `required: an AS number, "external" or "internal"`)
		}
		settings, err := spec.PeerSpec.apply(base, localAS, setting)
		if err != nil {
			return nil, err
		}
		out = append(out, PeerGroup{Name: spec.Name, PeerSettings: settings})
	}
	return out, nil
}

func (l loader) fileNeighbors(base PeerSettings, cfg *Config) ([]Neighbor, error) {
	var out []Neighbor
	for i, spec := range l.file.Neighbors {
		setting := l.fileKey("neighbor", i)
		n, err := NewNeighbor(spec, base, cfg.PeerGroups, cfg.ASN, setting)
		if err != nil {
			return nil, err
		}
		if err := checkDuplicate(out, n, setting("address")); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// ParseNeighbors decodes the compact BGP_NEIGHBORS list: ADDRESS:AS or
// INTERFACE:AS items, comma separated (an IPv6 address may be bracketed).
// Each neighbour gets base's other settings.
func ParseNeighbors(list string, base PeerSettings, localAS uint32) ([]Neighbor, error) {
	var out []Neighbor
	for _, item := range splitList(list) {
		colon := strings.LastIndex(item, ":")
		if colon < 0 {
			return nil, badValue(EnvNeighbors, item, `want ADDRESS:AS or INTERFACE:AS, AS a number, "external" or "internal"`)
		}
		host := strings.TrimSuffix(strings.TrimPrefix(item[:colon], "["), "]")
		spec := NeighborSpec{PeerSpec: PeerSpec{RemoteAS: Text(item[colon+1:])}}
		if looksLikeAddress(host) {
			spec.Address = host
		} else {
			spec.Interface = host
		}
		n, err := NewNeighbor(spec, base, nil, localAS, func(string) string { return EnvNeighbors })
		if cerr := (*ConfigError)(nil); errors.As(err, &cerr) {
			// Blame the whole item: "fd00:" alone would puzzle the reader.
			return nil, badValue(EnvNeighbors, item, "%s", cerr.Reason)
		} else if err != nil {
			return nil, err
		}
		if err := checkDuplicate(out, n, EnvNeighbors); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// looksLikeAddress tells an IP address (even a malformed one, so its error
// says "address") from an interface name: names never hold ':' and rarely
// are all digits and dots.
func looksLikeAddress(s string) bool {
	return strings.Contains(s, ":") || strings.Trim(s, "0123456789.") == ""
}

func checkDuplicate(seen []Neighbor, n Neighbor, setting string) error {
	for _, s := range seen {
		if s.Address == n.Address && s.Interface == n.Interface {
			return badValue(setting, n.Name(), "neighbour listed twice")
		}
	}
	return nil
}

func (l loader) dynamicNeighbors(groups []PeerGroup) ([]DynamicNeighbor, error) {
	var out []DynamicNeighbor
	for i, spec := range l.file.DynamicNeighbors {
		setting := l.fileKey("dynamic-neighbor", i)
		p, err := parsePrefix(setting("prefix"), spec.Prefix)
		if err != nil {
			return nil, err
		}
		if _, ok := findGroup(groups, spec.PeerGroup); !ok {
			return nil, badValue(setting("peer-group"), spec.PeerGroup, "no such peer group (dynamic neighbours take their settings from one)")
		}
		for _, d := range out {
			if d.Prefix.Overlaps(p) {
				return nil, badValue(setting("prefix"), spec.Prefix, "overlaps dynamic neighbour range %s", d.Prefix)
			}
		}
		out = append(out, DynamicNeighbor{Prefix: p, PeerGroup: spec.PeerGroup})
	}
	return out, nil
}
