package ipam_test

import (
	"testing"

	"github.com/ipvlan-bgp/ipvlan-bgp/api"
	"github.com/ipvlan-bgp/ipvlan-bgp/ipam"
)

var _ api.IPAMDriver = (*ipam.IPAM)(nil)

// Docker sends back in RequestPool the address space the api package
// reported, and the driver refuses any other.
func TestAddressSpacesMatchAPI(t *testing.T) {
	if ipam.LocalAddressSpace != api.LocalAddressSpace || ipam.GlobalAddressSpace != api.GlobalAddressSpace {
		t.Errorf("ipam address spaces %q, %q; api reports %q, %q",
			ipam.LocalAddressSpace, ipam.GlobalAddressSpace, api.LocalAddressSpace, api.GlobalAddressSpace)
	}
}
