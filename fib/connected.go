package fib

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/logs"
)

// resubscribeAfter is how soon a broken address subscription (the kernel
// dropped messages on a full socket buffer) is opened again.
const resubscribeAfter = time.Second

// Connected keeps the subnets of the host's own addresses (uplinks,
// management, bridges): a learned route inside one of them would pull the
// traffic to the host's direct neighbours away from the link, so the
// importer refuses such routes.
type Connected struct {
	log *logrus.Entry

	mu      sync.Mutex
	byAddr  map[connectedKey]netip.Prefix // every address of the host, by link
	subnets map[netip.Prefix]int          // how many addresses hold each subnet
}

type connectedKey struct {
	link int
	addr netip.Prefix // the address with its prefix length, as configured
}

// NewConnected reads the host's addresses, so Covering answers before the
// first learned route arrives; Run then follows their changes.
func NewConnected(log *logrus.Entry) (*Connected, error) {
	log = logs.For(log, component)
	c := &Connected{log: log, byAddr: map[connectedKey]netip.Prefix{}, subnets: map[netip.Prefix]int{}}
	if _, err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Covering returns the connected subnet holding p (equal or wider), if any.
func (c *Connected) Covering(p netip.Prefix) (netip.Prefix, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.subnets {
		if s.Addr().BitLen() == p.Addr().BitLen() && s.Bits() <= p.Bits() && s.Contains(p.Addr()) {
			return s, true
		}
	}
	return netip.Prefix{}, false
}

// Run follows address changes until ctx ends, calling changed with the
// subnets that appeared or went away.
func (c *Connected) Run(ctx context.Context, changed func([]netip.Prefix)) {
	for ctx.Err() == nil {
		if err := c.follow(ctx, changed); err != nil && ctx.Err() == nil {
			c.log.WithError(err).Warn("following the host's addresses; subscribing again")
		}
		select {
		case <-ctx.Done():
		case <-time.After(resubscribeAfter):
		}
	}
}

// follow subscribes, then reads every address again (catching up with what
// changed while not subscribed), then applies updates until the
// subscription breaks or ctx ends. An update that the reading already
// shows changes nothing when applied again.
func (c *Connected) follow(ctx context.Context, changed func([]netip.Prefix)) error {
	updates := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	var subErr error
	err := subscribeAddrs(updates, done, func(err error) { subErr = err })
	if err != nil {
		return fmt.Errorf("subscribe to address changes: %w", err)
	}
	diff, err := c.reload()
	if err != nil {
		return err
	}
	if len(diff) > 0 {
		changed(diff)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-updates:
			if !ok {
				return subErr
			}
			if diff := c.apply(u); len(diff) > 0 {
				changed(diff)
			}
		}
	}
}

// reload replaces the set with the kernel's addresses and returns the
// subnets that appeared or went away.
func (c *Connected) reload() ([]netip.Prefix, error) {
	addrs, err := listAddrs()
	if err != nil {
		return nil, fmt.Errorf("list the host's addresses: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	before := maps.Clone(c.subnets)
	clear(c.byAddr)
	clear(c.subnets)
	for _, a := range addrs {
		c.addLocked(a.LinkIndex, a.IPNet)
	}
	return symmetricDifference(before, c.subnets), nil
}

// apply records one update and returns the subnet it added or removed.
func (c *Connected) apply(u netlink.AddrUpdate) []netip.Prefix {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u.NewAddr {
		return c.addLocked(u.LinkIndex, &u.LinkAddress)
	}
	key, ok := keyOf(u.LinkIndex, &u.LinkAddress)
	subnet, known := c.byAddr[key]
	if !ok || !known {
		return nil
	}
	delete(c.byAddr, key)
	if c.subnets[subnet]--; c.subnets[subnet] > 0 {
		return nil
	}
	delete(c.subnets, subnet)
	return []netip.Prefix{subnet}
}

func (c *Connected) addLocked(link int, ipnet *net.IPNet) []netip.Prefix {
	key, ok := keyOf(link, ipnet)
	if _, known := c.byAddr[key]; !ok || known {
		return nil
	}
	subnet := key.addr.Masked()
	c.byAddr[key] = subnet
	if c.subnets[subnet]++; c.subnets[subnet] > 1 {
		return nil
	}
	return []netip.Prefix{subnet}
}

func keyOf(link int, ipnet *net.IPNet) (connectedKey, bool) {
	if ipnet == nil {
		return connectedKey{}, false
	}
	addr, ok := netip.AddrFromSlice(ipnet.IP)
	ones, bits := ipnet.Mask.Size()
	if !ok || bits == 0 {
		return connectedKey{}, false
	}
	addr = addr.Unmap()
	return connectedKey{link: link, addr: netip.PrefixFrom(addr, ones)}, true
}

// symmetricDifference lists the keys in exactly one of a and b.
func symmetricDifference(a, b map[netip.Prefix]int) []netip.Prefix {
	var out []netip.Prefix
	for p := range a {
		if _, ok := b[p]; !ok {
			out = append(out, p)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			out = append(out, p)
		}
	}
	return out
}
