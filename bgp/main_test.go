package bgp

import (
	"testing"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

// TestMain runs the tests in a throwaway network namespace, so the speakers
// they start never touch the machine's own network.
func TestMain(m *testing.M) { testnet.Main(m) }
