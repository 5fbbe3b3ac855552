// Package unixsock opens and dials the plugin's unix sockets (the plugin API,
// status, metrics and GoBGP API sockets) in one careful way.
//
// A socket path is a setting an operator types, so a typo may name the state
// file or anything else: Listen replaces only a stale socket, never another
// kind of file. It binds inside a private directory beside the path, sets the
// mode, then renames the socket into place, so nobody can connect before the
// mode is set and a stale socket of a crashed run is replaced in one step.
package unixsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// MaxPath is the longest path sockaddr_un's sun_path holds with its
// terminating NUL. Longer paths are reached through /proc/self/fd.
const MaxPath = 107

// Listener is a unix socket opened by Listen. Close removes the socket file
// if it is still the one this listener made.
type Listener struct {
	*net.UnixListener
	path string
	dev  uint64
	ino  uint64
}

// Listen creates a unix socket at path with mode (0600: root only), making
// its directory if needed. A stale socket at path is replaced; any other
// file there is an error and is left alone.
func Listen(path string, mode os.FileMode) (*Listener, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("socket %s: want an absolute path", path)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket == 0 {
		return nil, fmt.Errorf("%s exists and is not a socket (%s); not replacing it", path, fi.Mode().Type())
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create socket directory %s: %w", dir, err)
	}
	// Beside path: a rename cannot cross file systems, and the plugin's
	// /state is a mount of its own.
	private, err := os.MkdirTemp(dir, ".ipb-")
	if err != nil {
		return nil, fmt.Errorf("make private directory beside %s: %w", path, err)
	}
	defer os.RemoveAll(private)
	l, tmp, err := bindIn(private)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// The file moves; Close removes it by its final name.
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(filepath.Join(private, tmp), mode); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("set mode %o on socket %s: %w", mode, path, err)
	}
	if err := os.Rename(filepath.Join(private, tmp), path); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("move socket into place at %s: %w", path, err)
	}
	out := &Listener{UnixListener: l, path: path}
	out.dev, out.ino = identity(path)
	return out, nil
}

// bindIn binds a socket named "s" in dir, through /proc/self/fd when dir's
// path is too long for sockaddr_un.
func bindIn(dir string) (*net.UnixListener, string, error) {
	const name = "s"
	addr := filepath.Join(dir, name)
	if len(addr) > MaxPath {
		d, err := os.Open(dir)
		if err != nil {
			return nil, "", err
		}
		defer d.Close()
		addr = fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), name)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	return l, name, err
}

func identity(path string) (dev, ino uint64) {
	fi, err := os.Lstat(path)
	if err != nil {
		return 0, 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Dev, st.Ino
	}
	return 0, 0
}

// Path is where the socket is.
func (l *Listener) Path() string { return l.path }

// Close stops listening and removes the socket file unless something else
// has taken its place since (a new run of the plugin).
func (l *Listener) Close() error {
	err := l.UnixListener.Close()
	if dev, ino := identity(l.path); ino != 0 && dev == l.dev && ino == l.ino {
		if rmErr := os.Remove(l.path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("remove socket %s: %w", l.path, rmErr))
		}
	}
	return err
}

// Dial connects to the unix socket at path, also one whose path is too long
// for sockaddr_un (the plugin's sockets on a Docker host live under
// /var/lib/docker/plugins/<64-hex ID>/propagated-mount/).
func Dial(ctx context.Context, path string) (net.Conn, error) {
	if len(path) <= MaxPath {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("open the directory of socket %s: %w", path, err)
	}
	defer dir.Close()
	short := fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path))
	return (&net.Dialer{}).DialContext(ctx, "unix", short)
}
