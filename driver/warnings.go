package driver

import (
	"fmt"
	"net/netip"

	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/dockerid"
)

// NoLocalRange is the warning for a network that announces routes (it is
// not internal, announce is not none) from a pool this host allocates from
// in full: no IPAM_LOCAL_RANGES entry and no --ip-range narrows it. Another
// host with the same subnet then hands out the same addresses, and with
// announce=subnet every such host announces the same pool. The status view
// shows it for as long as it holds; the driver logs it at network create.
func NoLocalRange(network string, pool netip.Prefix, announce string) string {
	also := ""
	if announce == string(announceSubnet) {
		also = ", and announces the whole pool as every such host does"
	}
	return fmt.Sprintf("network %s: pool %s has no local range on this host, so it allocates from the whole pool: a second host with this subnet hands out the same addresses%s; set IPAM_LOCAL_RANGES to this host's block of %s (or pass --ip-range), unless this host alone uses the subnet",
		dockerid.Short(network), pool, also, pool)
}

// warnNoLocalRange logs NoLocalRange for each pool of rec this host
// allocates from in full.
func (d *Driver) warnNoLocalRange(rec networkRecord) {
	if d.ranges == nil || rec.Config.Announce == announceNone {
		return
	}
	for _, p := range rec.Pools {
		if block, ok := d.ranges.LocalRange(p.Prefix); ok && block == p.Prefix {
			d.log.WithFields(logrus.Fields{"network": rec.ID, "pool": p.Prefix}).Warn(NoLocalRange(rec.ID, p.Prefix, string(rec.Config.Announce)))
		}
	}
}
