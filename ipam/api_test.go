package ipam_test

import (
	"github.com/ipvlan-bgp/ipvlan-bgp/api"
	"github.com/ipvlan-bgp/ipvlan-bgp/ipam"
)

var _ api.IPAMDriver = (*ipam.IPAM)(nil)
