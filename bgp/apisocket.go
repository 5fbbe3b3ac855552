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
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/unixsock"
)

// apiServer exposes GoBGP's gRPC API on the operator's socket. GoBGP only
// serves gRPC on listeners it opens itself, and reports a failure to open
// one only in its log; so it listens in a private 0700 directory only we
// create (nothing there can fail or collide), and the operator-facing
// listeners, opened and checked here (the caller's uid on loopback TCP),
// relay connections to it.
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
		l, err := unixsock.Listen(cfg.APISocket, 0o600)
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
		if err := checkCaller(conn); err != nil {
			a.log.WithError(err).WithField("caller", conn.RemoteAddr()).Warn("refused a GoBGP API connection: only root may use the API")
			_ = conn.Close()
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
