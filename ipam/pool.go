package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// pool is one pool in memory. Only IPAM's methods touch it, under IPAM's lock.
//
// Allocated addresses are a set plus a moving cursor rather than a bitmap, so
// an IPv6 /64 costs memory per allocation, not per address.
type pool struct {
	id     string
	space  string
	prefix netip.Prefix // the network's subnet (--subnet, or carved)
	rng    netip.Prefix // where container addresses come from: --ip-range, this host's LocalRanges entry, or prefix
	// gateway is the address Docker asked for as the network's gateway;
	// invalid while none is reserved. A network that needs none (L3 modes
	// on Docker 28+, GwAllocCheck) never asks, so no address is set aside.
	gateway netip.Addr
	// reserved are the addresses no host may hold: the IPv4 network and
	// broadcast addresses, the IPv6 subnet-router anycast address. Those of
	// the pool only: blocks inside it are slices of one routed subnet.
	reserved []netip.Addr
	taken    map[netip.Addr]allocation
	// inRange counts taken addresses inside rng; usable is how many addresses
	// rng offers at all, so inRange == usable means full without a scan.
	inRange uint64
	usable  uint64
	// cursor is where the next search starts. It only moves forward, so a
	// released address is handed out again only after the range wraps: its
	// /32 withdrawal has long reached every peer by then.
	cursor netip.Addr
	// since is when this run created the pool; zero for a pool loaded from
	// the store (reclaim.go).
	since time.Time
}

// allocation is one taken address.
type allocation struct {
	// container marks an address handed out for a container of a network
	// the network driver runs (not a gateway, nor an --aux-address taken
	// before the network existed): one that no endpoint holds once Docker
	// is done with it was lost in a crash (reclaim.go).
	container bool
	since     time.Time // as pool.since
}

func poolID(space string, prefix netip.Prefix) string { return space + "/" + prefix.String() }

// newPool checks that prefix and rng leave room for a gateway and at least
// one container.
func newPool(space string, prefix, rng netip.Prefix) (*pool, error) {
	if hostBits(prefix) < 2 {
		return nil, invalid(fieldPool, prefix.String(), "too small: an %s pool needs at most /%d to hold a gateway and a container",
			family(prefix.Addr().Is6()), prefix.Addr().BitLen()-2)
	}
	p := &pool{
		id: poolID(space, prefix), space: space, prefix: prefix, rng: rng,
		reserved: []netip.Addr{prefix.Addr()},
		taken:    map[netip.Addr]allocation{},
		cursor:   rng.Addr(),
	}
	if prefix.Addr().Is4() {
		p.reserved = append(p.reserved, lastAddr(prefix))
	}
	p.usable = size(rng)
	for _, a := range p.reserved {
		if rng.Contains(a) {
			p.usable--
		}
	}
	if p.usable == 0 || (p.usable == 1 && rng.Contains(p.defaultGateway())) {
		return nil, &Error{Kind: ErrInvalid, Reason: fmt.Sprintf(
			"pool %s: allocation range %s has no address left for containers once the subnet's own addresses and a gateway %s are set aside", prefix, rng, p.defaultGateway())}
	}
	return p, nil
}

// defaultGateway is the address a gateway gets when Docker names none: the
// pool's first, as Docker's own IPAM does.
func (p *pool) defaultGateway() netip.Addr { return p.prefix.Addr().Next() }

func (p *pool) isSubnetReserved(a netip.Addr) bool { return slices.Contains(p.reserved, a) }

func (p *pool) isTaken(a netip.Addr) bool {
	_, ok := p.taken[a]
	return ok
}

func (p *pool) take(a netip.Addr, how allocation) {
	p.taken[a] = how
	if p.rng.Contains(a) {
		p.inRange++
	}
}

func (p *pool) free(a netip.Addr) {
	delete(p.taken, a)
	if p.rng.Contains(a) {
		p.inRange--
	}
}

// nextFree finds the first free address at or after the cursor, wrapping
// once around the range.
func (p *pool) nextFree() (netip.Addr, error) {
	a := p.cursor
	if p.inRange < p.usable {
		// Every step that fails passes a taken or subnet-reserved address of
		// the range, and there are at most inRange+2 of them.
		for range p.inRange + 3 {
			if !p.rng.Contains(a) {
				a = p.rng.Addr()
			}
			if !p.isSubnetReserved(a) && !p.isTaken(a) {
				return a, nil
			}
			a = a.Next()
		}
	}
	held := ""
	if p.gateway.IsValid() && p.rng.Contains(p.gateway) {
		held = fmt.Sprintf(", the gateway %s holding one", p.gateway)
	}
	return netip.Addr{}, &Error{Kind: ErrExhausted, Reason: fmt.Sprintf(
		"pool %s is full: all %d usable addresses of its allocation range %s are allocated%s", p.prefix, p.usable, p.rng, held)}
}

// checkWanted says why a container cannot have address a, if it cannot.
func (p *pool) checkWanted(field string, a netip.Addr) error {
	switch {
	case !p.prefix.Contains(a):
		return invalid(field, a.String(), "outside pool %s", p.prefix)
	case !p.rng.Contains(a):
		return invalid(field, a.String(), "outside this host's allocation range %s of pool %s", p.rng, p.prefix)
	}
	return p.checkFree(field, a)
}

// checkFree says why a, inside the pool, cannot be reserved, if it cannot.
func (p *pool) checkFree(field string, a netip.Addr) error {
	switch {
	case p.isSubnetReserved(a):
		return invalid(field, a.String(), "the subnet's own address in pool %s (network, broadcast or subnet-router anycast)", p.prefix)
	case p.gateway.IsValid() && a == p.gateway:
		return &Error{Kind: ErrInUse, Field: field, Value: a.String(), Reason: fmt.Sprintf("already allocated as the gateway of pool %s", p.prefix)}
	case p.isTaken(a):
		return &Error{Kind: ErrInUse, Field: field, Value: a.String(), Reason: fmt.Sprintf("already allocated in pool %s", p.prefix)}
	}
	return nil
}
