package bgp

import (
	"context"
	"fmt"
	"net"
	"time"
)

// interfaceEvery is how often the speaker looks for an unnumbered
// neighbour's interface that does not exist yet.
var interfaceEvery = time.Second

// awaitInterface returns once ifname exists (true) or ctx ends (false). An
// INTERFACE:AS neighbour may name a bond or VLAN that comes up after the
// plugin: BGP stays on, the other sessions come up, and this one starts
// when its interface appears. Meanwhile the log and Status say so.
func (s *Speaker) awaitInterface(ctx context.Context, ifname string) bool {
	if _, err := net.InterfaceByName(ifname); err == nil {
		return true
	}
	key := "interface " + ifname
	text := fmt.Sprintf("unnumbered neighbour %s: no interface %s yet; its session starts once the interface appears (check the bond or VLAN that should create it, or the name in BGP_NEIGHBORS)", ifname, ifname)
	s.warnings.set(key, text)
	log := s.log.WithField("peer", ifname)
	log.Warn(text)
	defer s.warnings.clear(key)
	return everyUntil(ctx, interfaceEvery, func() bool {
		_, err := net.InterfaceByName(ifname)
		if err == nil {
			log.Info("interface of the unnumbered neighbour appeared")
		}
		return err == nil
	})
}
