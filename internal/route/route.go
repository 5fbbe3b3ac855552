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

// Announcer is the BGP speaker as the network driver sees it. It is
// declarative: Set replaces everything one owner (an endpoint or a network ID)
// wants announced, and an empty list withdraws it. Set never blocks on BGP
// convergence: Docker calls must not wait for peers.
type Announcer interface {
	Set(owner string, adverts []Advert)
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
