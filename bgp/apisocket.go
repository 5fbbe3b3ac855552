package bgp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
)

// apiServer exposes GoBGP's gRPC API on the operator's socket. GoBGP only
// serves gRPC on listeners it opens itself, and ends the process if that
// fails; so it listens in a private 0700 directory only we create (nothing
// there can fail or collide), and the operator-facing listeners, opened and
// checked here, relay connections to it.
type apiServer struct {
	dir       string // private directory holding GoBGP's own socket
	socket    string // the public unix socket, removed on close
	listeners []net.Listener
	log       *logrus.Entry
}

// newAPIServer opens the public listeners; nil when the API is off.
func newAPIServer(cfg config.Config, log *logrus.Entry) (*apiServer, error) {
	if cfg.APISocket == "" && cfg.APITCP == "" {
		return nil, nil
	}
	dir, err := os.MkdirTemp("", "ipvlan-bgp-gobgp-")
	if err != nil {
		return nil, fmt.Errorf("make private directory for GoBGP's API socket: %w", err)
	}
	a := &apiServer{dir: dir, log: log.WithField("part", "gobgp-api")}
	if cfg.APISocket != "" {
		l, err := listenPrivateUnix(cfg.APISocket)
		if err != nil {
			_ = a.close()
			return nil, fmt.Errorf("%s: %w", config.EnvAPISocket, err)
		}
		a.socket = cfg.APISocket
		a.listeners = append(a.listeners, l)
	}
	if cfg.APITCP != "" {
		l, err := net.Listen("tcp", cfg.APITCP)
		if err != nil {
			_ = a.close()
			return nil, fmt.Errorf("%s: %w", config.EnvAPITCP, err)
		}
		a.listeners = append(a.listeners, l)
	}
	return a, nil
}

// internalAddress is where GoBGP itself serves gRPC.
func (a *apiServer) internalAddress() string { return "unix://" + a.internalPath() }

func (a *apiServer) internalPath() string { return filepath.Join(a.dir, "gobgp.sock") }

// listenPrivateUnix creates a unix socket at path that only root can use.
// It binds inside a private (0700) directory beside path, sets mode 0600,
// then renames it into place, so no one can connect in between and a stale
// socket from a previous run is replaced atomically. The directory is beside
// path because a rename cannot cross file systems (the plugin's /state is a
// mount of its own). Anything but a socket at path is refused.
func listenPrivateUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket == 0 {
		return nil, fmt.Errorf("%s exists and is not a socket; not replacing it", path)
	}
	privateDir, err := os.MkdirTemp(filepath.Dir(path), ".gobgp-api-")
	if err != nil {
		return nil, fmt.Errorf("make private directory beside %s: %w", path, err)
	}
	defer os.RemoveAll(privateDir)
	tmp := filepath.Join(privateDir, "public.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false) // the file moves; close removes it by its final name
	if err := os.Chmod(tmp, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("restrict %s to root: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("move API socket to %s: %w", path, err)
	}
	return l, nil
}

// serve relays connections until ctx ends.
func (a *apiServer) serve(ctx context.Context) {
	var wg sync.WaitGroup
	for _, l := range a.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.acceptLoop(l)
		}()
	}
	<-ctx.Done()
	for _, l := range a.listeners {
		_ = l.Close()
	}
	wg.Wait()
}

func (a *apiServer) acceptLoop(l net.Listener) {
	for {
		conn, err := l.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			a.log.WithError(err).Warn("accept API connection")
			time.Sleep(100 * time.Millisecond) // out of descriptors: do not spin
			continue
		}
		go a.relay(conn)
	}
}

// relay copies bytes both ways between a client and GoBGP's socket; it ends
// when either side closes (GoBGP's side does when the speaker stops).
func (a *apiServer) relay(client net.Conn) {
	defer client.Close()
	backend, err := net.Dial("unix", a.internalPath())
	if err != nil {
		a.log.WithError(err).Warn("reach GoBGP's gRPC server")
		return
	}
	defer backend.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(backend, client)
	go pipe(client, backend)
	<-done // either side closing ends both
}

// close stops listening and removes the sockets and the private directory.
func (a *apiServer) close() error {
	for _, l := range a.listeners {
		_ = l.Close()
	}
	var errs []error
	if a.socket != "" {
		if err := os.Remove(a.socket); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove API socket: %w", err))
		}
	}
	if err := os.RemoveAll(a.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove GoBGP's private socket directory: %w", err))
	}
	return errors.Join(errs...)
}
