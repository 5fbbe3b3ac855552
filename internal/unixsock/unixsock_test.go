package unixsock

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListen(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantErr string
	}{
		{name: "nothing there"},
		{name: "missing directory", prepare: func(t *testing.T, path string) {}},
		{name: "stale socket", prepare: func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
		}},
		{name: "regular file", wantErr: "not a socket", prepare: func(t *testing.T, path string) {
			writeFile(t, path, "state")
		}},
		{name: "directory", wantErr: "not a socket", prepare: func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "symlink to a file", wantErr: "not a socket", prepare: func(t *testing.T, path string) {
			target := path + ".target"
			writeFile(t, target, "state")
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.name == "missing directory" {
				dir = filepath.Join(dir, "a", "b")
			}
			path := filepath.Join(dir, "x.sock")
			if tc.prepare != nil {
				tc.prepare(t, path)
			}
			before, _ := os.ReadFile(path)
			l, err := Listen(path, 0o600)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Listen: err %v, want one saying %q", err, tc.wantErr)
				}
				after, _ := os.ReadFile(path)
				if string(after) != string(before) {
					t.Fatalf("Listen changed %s", path)
				}
				assertNoLeftovers(t, filepath.Dir(path))
				return
			}
			if err != nil {
				t.Fatalf("Listen: %v", err)
			}
			fi, err := os.Lstat(path)
			if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
				t.Fatalf("socket file: %v %v, want a 0600 socket", fi, err)
			}
			assertServes(t, l, path)
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if _, err := os.Lstat(path); !os.IsNotExist(err) {
				t.Fatalf("socket still there after Close: %v", err)
			}
			assertNoLeftovers(t, filepath.Dir(path))
		})
	}
}

// TestCloseLeavesSuccessor: a new run's socket at the same path survives
// the old listener's Close.
func TestCloseLeavesSuccessor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.sock")
	old, err := Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	successor, err := Listen(path, 0o600)
	if err != nil {
		t.Fatalf("second Listen over a live socket: %v", err)
	}
	defer successor.Close()
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	assertServes(t, successor, path)
}

// TestLongPath: a socket deeper than sockaddr_un allows is created and
// reached.
func TestLongPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), "plugins", strings.Repeat("0123456789abcdef", 4), "propagated-mount")
	path := filepath.Join(dir, "status.sock")
	if len(path) <= MaxPath {
		t.Fatalf("test path is only %d bytes; it must exceed %d", len(path), MaxPath)
	}
	l, err := Listen(path, 0o600)
	if err != nil {
		t.Fatalf("Listen on a %d-byte path: %v", len(path), err)
	}
	defer l.Close()
	assertServes(t, l, path)
}

func assertServes(t *testing.T, l *Listener, path string) {
	t.Helper()
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			_, err = c.Write([]byte("hi"))
			c.Close()
		}
		accepted <- err
	}()
	c, err := Dial(context.Background(), path)
	if err != nil {
		t.Fatalf("Dial %s: %v", path, err)
	}
	defer c.Close()
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil || string(buf) != "hi" {
		t.Fatalf("read %q %v", buf, err)
	}
	if err := <-accepted; err != nil {
		t.Fatalf("accept: %v", err)
	}
}

func assertNoLeftovers(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".ipb-") {
			t.Errorf("private directory %s left behind", e.Name())
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
