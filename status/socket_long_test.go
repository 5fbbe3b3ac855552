package status

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/unixsock"
)

// TestDialLongSocketPath: the plugin's socket on a Docker host is deeper than
// sockaddr_un allows; Fetch must still reach it.
func TestDialLongSocketPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), "plugins", strings.Repeat("0123456789abcdef", 4), "propagated-mount")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "status.sock")
	if len(socket) <= unixsock.MaxPath {
		t.Fatalf("test path is only %d bytes; it must exceed %d", len(socket), unixsock.MaxPath)
	}
	old, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", "status.sock")
	_ = os.Chdir(old)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"networks":[{"id":"n1"}]}`))
		}))
	}()
	doc, err := Fetch(context.Background(), socket)
	if err != nil {
		t.Fatalf("Fetch over a %d-byte socket path: %v", len(socket), err)
	}
	if len(doc.Networks) != 1 || doc.Networks[0].ID != "n1" {
		t.Fatalf("Fetch = %+v", doc)
	}
}
