package config

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ConfigError is a bad setting: which one, the value given, and why. Its
// text is what the operator sees, so it names the env var or file key.
type ConfigError struct {
	Setting string
	Value   string
	Reason  string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s=%q: %s", e.Setting, e.Value, e.Reason)
}

func badValue(setting, value, format string, args ...any) error {
	return &ConfigError{Setting: setting, Value: value, Reason: fmt.Sprintf(format, args...)}
}

func parseASN(setting, s string) (uint32, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil || n == 0 {
		return 0, badValue(setting, s, "an AS number must be 1..4294967295")
	}
	return uint32(n), nil
}

// parseRemoteAS reads a number, "external" (any AS but learned from the
// peer's OPEN) or "internal" (our own AS).
func parseRemoteAS(setting, s string, localAS uint32) (uint32, error) {
	switch strings.TrimSpace(s) {
	case "external":
		return 0, nil
	case "internal":
		return localAS, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil || n == 0 {
		return 0, badValue(setting, s, `want an AS number 1..4294967295, "external" or "internal"`)
	}
	return uint32(n), nil
}

func parseUint(setting, s string, lo, hi uint64) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, badValue(setting, s, "want a whole number %d..%d", lo, hi)
	}
	return n, nil
}

func parseBool(setting, s string) (bool, error) {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return false, badValue(setting, s, "want true or false")
	}
	return b, nil
}

// timeUnit is the resolution of a timer setting: BGP's timers are whole
// seconds, BFD's intervals whole milliseconds.
type timeUnit struct {
	size          time.Duration
	name, example string // "seconds", "90 or 90s"
	whole         string // what the error says must be whole
}

var (
	seconds = timeUnit{time.Second, "seconds", "90 or 90s", "BGP timers are whole seconds"}
	millis  = timeUnit{time.Millisecond, "milliseconds", "300 or 300ms", "BFD intervals are whole milliseconds"}
)

// parseTime reads a whole number of units, either bare ("90") or as a Go
// duration ("90s", "2m"), within [lo, hi].
func parseTime(setting, s string, unit timeUnit, lo, hi time.Duration) (time.Duration, error) {
	s = strings.TrimSpace(s)
	d, err := time.ParseDuration(s)
	if n, nerr := strconv.ParseUint(s, 10, 32); nerr == nil {
		d, err = time.Duration(n)*unit.size, nil
	}
	switch {
	case err != nil:
		return 0, badValue(setting, s, "want %s, e.g. %s", unit.name, unit.example)
	case d%unit.size != 0:
		return 0, badValue(setting, s, "%s", unit.whole)
	case d < lo || d > hi:
		return 0, badValue(setting, s, "want %s..%s", lo, hi)
	}
	return d, nil
}

func parseRouterID(setting, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || !a.Is4() || a.IsUnspecified() {
		return netip.Addr{}, badValue(setting, s, "a router ID is a non-zero IPv4 address")
	}
	return a, nil
}

func parseFamilies(setting string, list []string) ([]Family, error) {
	if len(list) == 0 {
		return nil, badValue(setting, "", "list at least one of %s, %s", IPv4Unicast, IPv6Unicast)
	}
	var out []Family
	for _, item := range list {
		f := Family(strings.TrimSpace(item))
		if f != IPv4Unicast && f != IPv6Unicast {
			return nil, badValue(setting, item, "unknown family: want %s or %s", IPv4Unicast, IPv6Unicast)
		}
		for _, seen := range out {
			if seen == f {
				return nil, badValue(setting, item, "family listed twice")
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// parsePrefix reads a CIDR that must be a network address (10.0.0.0/8, not
// 10.0.0.1/8: a typo there would silently widen or shift the range).
func parsePrefix(setting, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, badValue(setting, s, "not a CIDR prefix")
	}
	if p != p.Masked() {
		return netip.Prefix{}, badValue(setting, s, "host bits set: did you mean %s?", p.Masked())
	}
	return p, nil
}

func parsePrefixes(setting string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range list {
		p, err := parsePrefix(setting, item)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// ParsePrefixRule reads a prefix-list entry: "10.0.0.0/8" matches exactly
// that prefix, "10.0.0.0/8 le 32" / "ge 24" / "ge 24 le 28" bound the length
// of more specifics, and "10.0.0.0/8 within" is any prefix inside it.
func ParsePrefixRule(s string) (PrefixRule, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return PrefixRule{}, fmt.Errorf("empty rule")
	}
	p, err := netip.ParsePrefix(fields[0])
	if err != nil || p != p.Masked() {
		return PrefixRule{}, fmt.Errorf("%q is not a network prefix", fields[0])
	}
	r := PrefixRule{Prefix: p, MinLen: p.Bits(), MaxLen: p.Bits()}
	return r, r.applyBounds(fields[1:])
}

func (r *PrefixRule) applyBounds(words []string) error {
	if len(words) == 1 && words[0] == "within" {
		r.MaxLen = r.Prefix.Addr().BitLen()
		return nil
	}
	seen := map[string]bool{}
	for ; len(words) > 0; words = words[2:] {
		if len(words) < 2 || (words[0] != "ge" && words[0] != "le") || seen[words[0]] {
			return fmt.Errorf(`after the prefix want "within", "ge N", "le N" or "ge N le M"`)
		}
		n, err := strconv.Atoi(words[1])
		if err != nil || n < r.Prefix.Bits() || n > r.Prefix.Addr().BitLen() {
			return fmt.Errorf("%s %s: want a length %d..%d", words[0], words[1], r.Prefix.Bits(), r.Prefix.Addr().BitLen())
		}
		seen[words[0]] = true
		if words[0] == "ge" {
			r.MinLen = n
			if !seen["le"] {
				r.MaxLen = r.Prefix.Addr().BitLen()
			}
		} else {
			r.MaxLen = n
		}
	}
	if r.MinLen > r.MaxLen {
		return fmt.Errorf("ge %d is above le %d", r.MinLen, r.MaxLen)
	}
	return nil
}

func parsePrefixRules(setting string, list []string) ([]PrefixRule, error) {
	var out []PrefixRule
	for _, item := range list {
		r, err := ParsePrefixRule(item)
		if err != nil {
			return nil, badValue(setting, item, "%v", err)
		}
		out = append(out, r)
	}
	return out, nil
}

// parseHostPort checks a TCP listen address for the gRPC API.
func parseHostPort(setting, s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err == nil {
		_, err = netip.ParseAddr(host)
	}
	if err == nil {
		_, err = parseUint(setting, port, 1, math.MaxUint16)
	}
	if err != nil {
		return "", badValue(setting, s, "want IP:PORT, e.g. 127.0.0.1:50051")
	}
	return s, nil
}

// splitList splits a comma-separated env value, dropping empty items; an
// unset or blank variable yields nil.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
