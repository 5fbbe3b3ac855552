package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/failpoint"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/unixsock"
)

const (
	contentType = "application/vnd.docker.plugins.v1.1+json"

	// LocalAddressSpace and GlobalAddressSpace are the address spaces the
	// IPAM driver reports; pools are keyed by subnet, so one of each is enough.
	LocalAddressSpace  = "ipvlan-bgp-local"
	GlobalAddressSpace = "ipvlan-bgp-global"

	// maxBody bounds a request: Docker's are a few KiB at most.
	maxBody = 1 << 20
	// readyWait bounds how long a call waits for start-up to finish; Docker
	// gives each call 30 s.
	readyWait = 25 * time.Second
)

// Server answers Docker's plugin protocol on one listener.
type Server struct {
	network  NetworkDriver
	ipam     IPAMDriver
	log      *logrus.Entry
	mux      *http.ServeMux
	observer Observer // nil: nobody listens

	readyOnce sync.Once
	ready     chan struct{}
	startErr  error
}

// NewServer routes both protocols. Calls other than activation and
// capabilities wait until Ready hands over the drivers, so the socket listens
// before the slow parts of start-up (state reload, reconciliation) finish.
func NewServer(log *logrus.Entry) *Server {
	s := &Server{log: log, mux: http.NewServeMux(), ready: make(chan struct{})}
	s.routeProtocol()
	s.routeNetwork()
	s.routeIPAM()
	return s
}

// Ready hands over the drivers and opens the gate for waiting calls.
func (s *Server) Ready(network NetworkDriver, ipam IPAMDriver) {
	s.readyOnce.Do(func() {
		s.network, s.ipam = network, ipam
		close(s.ready)
	})
}

// Fail opens the gate with an error instead of drivers: every call answers
// with it (a corrupt state file, a bad setting), so the reason shows at the
// docker CLI instead of the plugin dying in a restart loop.
func (s *Server) Fail(err error) {
	s.readyOnce.Do(func() {
		s.startErr = err
		close(s.ready)
	})
}

// Handler is the HTTP handler serving both protocols.
func (s *Server) Handler() http.Handler { return s.mux }

// Listen creates the plugin API's unix socket at path (root only: Docker
// connects as root), replacing a stale one left by a crashed run but never
// another kind of file.
func Listen(path string) (net.Listener, error) {
	return unixsock.Listen(path, 0o600)
}

// Serve answers calls on l until ctx ends, and returns once the calls in
// flight have finished (or had 10 s to), so the caller can close what they
// use.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	drained := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(drained)
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	})
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		<-drained
		return nil
	}
	stop()
	return fmt.Errorf("serve plugin API: %w", err)
}

// errorResponse is what Docker reads an error from: a non-200 status makes
// any call fail with the text in Err, for both protocols.
type errorResponse struct {
	Err string
}

// spec says how one call is served: whether it waits for start-up, and the
// fields its request must carry.
type spec struct {
	gated bool
	// needs lists the request's fields that must be present: a body without
	// them is not the request Docker sent (an interrupted call's retry
	// arrives empty, see decode) and must not be taken for one.
	needs []string
}

// handle registers one call: decode the request, wait for start-up, run the
// call with a context, encode the answer. A panic in a call becomes an error
// answer, never a dead plugin.
func handle[Req, Res any](s *Server, path string, c spec, fn func(context.Context, *Req) (*Res, error)) {
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		name := path[1:]
		log := s.log.WithField("call", name)
		started := time.Now()
		res, err := serveCall(s, r, c, fn)
		took := time.Since(started)
		s.observe(name, took, err)
		if err != nil {
			log.WithError(err).WithField("took", took).Warn("call failed")
			writeJSON(w, http.StatusInternalServerError, errorResponse{Err: err.Error()})
			return
		}
		log.WithField("took", took).Debug("call done")
		if res == nil {
			writeJSON(w, http.StatusOK, struct{}{})
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
}

// unsupported registers a call this driver does not serve: Docker reads a
// 404 as "the plugin does not implement it", never as success.
func unsupported(s *Server, path, why string) {
	s.mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) {
		err := fmt.Errorf("ipvlan-bgp does not serve %s: %s", path[1:], why)
		s.observe(path[1:], 0, err)
		writeJSON(w, http.StatusNotFound, errorResponse{Err: err.Error()})
	})
}

func serveCall[Req, Res any](s *Server, r *http.Request, c spec, fn func(context.Context, *Req) (*Res, error)) (res *Res, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.WithField("panic", p).WithField("stack", string(debug.Stack())).Error("call panicked")
			res, err = nil, fmt.Errorf("internal error: %v", p)
		}
	}()
	req := new(Req)
	if _, bodyless := any(req).(*empty); !bodyless {
		// Docker names the call itself ("IpamDriver.RequestPool: ...").
		if err := decode(r.Body, req, c.needs); err != nil {
			return nil, err
		}
	}
	if c.gated {
		if err := s.waitReady(r.Context()); err != nil {
			return nil, err
		}
	}
	name := r.URL.Path[1:]
	failpoint.Hit(name + ":received")
	res, err = fn(r.Context(), req)
	if err == nil {
		failpoint.Hit(name + ":answered") // done, but Docker never hears of it
	}
	return res, err
}

func (s *Server) waitReady(ctx context.Context) error {
	timer := time.NewTimer(readyWait)
	defer timer.Stop()
	select {
	case <-s.ready:
		if s.startErr != nil {
			return fmt.Errorf("ipvlan-bgp failed to start: %w", s.startErr)
		}
		return nil
	case <-timer.C:
		return errors.New("ipvlan-bgp is still starting (restoring state); retry in a moment")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a request body: exactly one JSON object holding the needed
// fields. Docker's plugin client retries a call that failed to connect (the
// plugin died mid-call) for up to 30 s, re-sending the buffer the first try
// drained: the retry arrives with an empty body. Read as an empty request it
// would be taken for another (a default pool instead of the user's
// --subnet, a delete of nothing), so it is an error, as is anything cut
// short or not an object.
func decode(body io.Reader, v any, needs []string) error {
	raw, err := io.ReadAll(io.LimitReader(body, maxBody+1))
	switch {
	case err != nil:
		return fmt.Errorf("read request: %w", err)
	case len(raw) > maxBody:
		return fmt.Errorf("malformed request: larger than %d bytes", maxBody)
	case len(bytes.TrimSpace(raw)) == 0:
		return errors.New("empty request body (Docker retrying a call the plugin could not finish?): nothing done; repeat the command")
	}
	var fields map[string]json.RawMessage
	if err := strictUnmarshal(raw, &fields); err != nil || fields == nil {
		return fmt.Errorf("malformed request: want one JSON object: %s", describe(err))
	}
	for _, f := range needs {
		if value, ok := fields[f]; !ok || string(value) == "null" {
			return fmt.Errorf("malformed request: no %s", f)
		}
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("malformed request: %w", err)
	}
	return nil
}

// strictUnmarshal decodes one JSON value and refuses anything after it.
func strictUnmarshal(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the object")
	}
	return nil
}

func describe(err error) string {
	if err == nil {
		return "got null"
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "cut short"
	}
	return err.Error()
}
