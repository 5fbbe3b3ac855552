package metrics

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

func TestErrorSource(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"none", nil, ""},
		{"user error", errors.New(`option "mtu": not a number`), ""},
		{"corrupt state", fmt.Errorf("load: %w", store.ErrCorrupt), SourceStore},
		{"file", fmt.Errorf("open: %w", &os.PathError{Op: "open", Path: "/state/x", Err: syscall.EACCES}), SourceStore},
		{"netlink", fmt.Errorf("create ipvlan link ipb-1 on eth0: %w", syscall.EOPNOTSUPP), SourceNetlink},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorSource(tt.err); got != tt.want {
				t.Errorf("errorSource(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}
