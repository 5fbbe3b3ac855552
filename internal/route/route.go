// Package route holds the one type the network driver and the BGP speaker
// share: a prefix this host originates, and the interface through which the
// driver tells the speaker what it wants announced.
package route

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Advert is one prefix this host originates, with the attributes the operator
// attached to its network (-o) or container (--driver-opt).
type Advert struct {
	Prefix           netip.Prefix
	Communities      []string // standard communities, "ASN:VALUE"
	LargeCommunities []string // large communities, "GLOBAL:LOCAL1:LOCAL2"
}

// Prefixes lists the adverts' prefixes as text, for logs and the status
// view.
func Prefixes(adverts []Advert) []string {
	out := make([]string, len(adverts))
	for i, a := range adverts {
		out[i] = a.Prefix.String()
	}
	return out
}

// Announcer is the BGP speaker as the network driver sees it. It is
// declarative: Set replaces everything one owner (an endpoint or a network ID)
// wants announced, and an empty list withdraws it. Set never blocks on BGP
// convergence: Docker calls must not wait for peers.
type Announcer interface {
	Set(owner string, adverts []Advert)
	// CheckExport says why prefix would never be announced, whatever the
	// sessions do (a default route, or a prefix broader than the speaker
	// allows), or nil.
	CheckExport(prefix netip.Prefix) error
}

// Discard is the Announcer when BGP is off: it announces nothing and
// refuses nothing.
type Discard struct{}

// Set does nothing.
func (Discard) Set(string, []Advert) {}

// CheckExport refuses nothing.
func (Discard) CheckExport(netip.Prefix) error { return nil }

// MaxCommunityBytes bounds the communities and large communities of one
// advert, counted as their attributes' values take them in an UPDATE (4
// bytes per community, 12 per large community). A BGP message is at most
// 4,096 bytes (RFC 4271 4.1), and GoBGP drops a path whose UPDATE would not
// fit; half of it leaves room for the prefix, the next hops and the AS path,
// also after the fabric has added its own.
const MaxCommunityBytes = 2048

// CheckCommunitySize says whether communities and large communities fit one
// UPDATE together.
func CheckCommunitySize(communities, large []string) error {
	if size := 4*len(communities) + 12*len(large); size > MaxCommunityBytes {
		return fmt.Errorf("%d communities and %d large communities take %d bytes of a BGP UPDATE; at most %d fit (%d communities, or %d large communities)",
			len(communities), len(large), size, MaxCommunityBytes, MaxCommunityBytes/4, MaxCommunityBytes/12)
	}
	return nil
}

// ParseCommunities validates a comma-separated list of standard communities
// ("65000:100,65000:200") and returns them one per element.
func ParseCommunities(list string) ([]string, error) {
	return parseColonList(list, 2, 16)
}

// ParseLargeCommunities validates a comma-separated list of large communities
// ("65000:1:2,65000:3:4") and returns them one per element.
func ParseLargeCommunities(list string) ([]string, error) {
	return parseColonList(list, 3, 32)
}

func parseColonList(list string, fields, bits int) ([]string, error) {
	var out []string
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.Split(item, ":")
		if len(parts) != fields {
			return nil, fmt.Errorf("%q: want %d numbers separated by ':'", item, fields)
		}
		for _, p := range parts {
			if _, err := strconv.ParseUint(p, 10, bits); err != nil {
				return nil, fmt.Errorf("%q: %q is not a %d-bit number", item, p, bits)
			}
		}
		out = append(out, item)
	}
	return out, nil
}
