// Package bgp embeds a GoBGP v4 speaker in the plugin. It announces the
// prefixes the network driver hands it (route.Announcer: Set records the
// wanted routes, a background reconcile applies them), peers with the leaf
// switches (numbered, unnumbered over IPv6 link-local, or dynamic; with MD5,
// multihop, BFD), keeps its peers' routes across its own restarts (RFC
// 4724), installs what the peers send into the kernel (the importer, through
// package fib) and serves GoBGP's gRPC API on a root-only unix socket for
// the stock `gobgp` CLI.
//
// Its settings are package config's. One file per concern: speaker.go
// (lifecycle), start.go (starting GoBGP), adverts.go and wanted.go
// (announcing), peers.go and unnumbered.go (neighbours), import.go (learned
// routes into the kernel), status.go, apisocket.go (the CLI's socket) and
// gobgplog.go (GoBGP's log into logrus).
package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
)

// Speaker is the embedded BGP speaker. It implements route.Announcer: Set
// records what each owner wants announced and a background reconcile applies
// it, so Docker calls never wait for BGP.
type Speaker struct {
	cfg         config.Config
	exportRules []config.PrefixRule // cfg.ExportRules(), computed once
	kernel      KernelRoutes
	connected   Connected
	log         *logrus.Entry

	lifecycle sync.Mutex // serialises Start and Stop

	mu      sync.Mutex
	wanted  wantedSet          // what each owner wants; guarded by mu
	lastErr error              // last config or BGP error; guarded by mu
	cancel  context.CancelFunc // stops the background work; guarded by mu
	running bool               // guarded by mu

	kick chan struct{} // wakes the reconcile loop; capacity 1

	reconcileMu    sync.Mutex
	announced      map[netip.Prefix]pathAttrs // what is in GoBGP; guarded by reconcileMu
	announcedCount atomic.Int64

	server   *server.BgpServer
	gobgpLog *slogBridge // the log of server
	api      *apiServer
	importer *importer      // set by Start when a kernel table was given; under mu
	wg       sync.WaitGroup // background goroutines
}

var _ route.Announcer = (*Speaker)(nil)

// retryEvery is how soon a failed reconcile or neighbour add is retried.
const retryEvery = 2 * time.Second

// Options are the speaker's links to the rest of the plugin.
type Options struct {
	// Kernel, when set, receives the routes learned from peers (the
	// importer, import.go); nil learns nothing into the kernel.
	Kernel KernelRoutes
	// Connected, when set, keeps learned routes inside the host's own
	// subnets out of the kernel (ImportPolicy.AllowConnected lifts it).
	Connected Connected
	Log       *logrus.Entry // nil: logrus' standard logger
}

// Connected is the host's connected subnets (fib.Connected).
type Connected interface {
	// Covering returns the connected subnet holding p, if any.
	Covering(p netip.Prefix) (netip.Prefix, bool)
	// Run follows changes until ctx ends, reporting the subnets that
	// appeared or went away.
	Run(ctx context.Context, changed func([]netip.Prefix))
}

// NewSpeaker makes a speaker from a validated config. Nothing runs until
// Start; Set may be called before (graceful restart re-adds routes first).
func NewSpeaker(cfg config.Config, opts Options) *Speaker {
	log := opts.Log
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &Speaker{
		cfg:         cfg,
		exportRules: cfg.ExportRules(),
		kernel:      opts.Kernel,
		connected:   opts.Connected,
		log:         log,
		wanted:      newWantedSet(),
		kick:        make(chan struct{}, 1),
		announced:   make(map[netip.Prefix]pathAttrs),
	}
}

// Set replaces everything owner wants announced; an empty list withdraws
// it. It never blocks: the reconcile loop applies the change.
func (s *Speaker) Set(owner string, adverts []route.Advert) {
	adverts = s.acceptable(owner, adverts)
	s.mu.Lock()
	ownership := s.wanted.set(owner, adverts)
	im := s.importer
	s.mu.Unlock()
	s.wake()
	// A learned route into a prefix that just became ours must leave the
	// kernel now, not at the peer's next update for it.
	if im != nil && len(ownership) > 0 {
		im.ownedChanged(ownership)
	}
}

func (s *Speaker) wake() {
	select {
	case s.kick <- struct{}{}:
	default: // a reconcile is already pending and will see this change
	}
}

// Owns reports whether p is a prefix this host originates (announced or
// not), so the importer never installs a peer's route over our own.
func (s *Speaker) Owns(p netip.Prefix) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.wanted.byPrefix[p]
	return ok
}

// recordErr logs err and keeps it for Status.
func (s *Speaker) recordErr(err error, msg string, fields logrus.Fields) {
	s.log.WithFields(fields).WithError(err).Error(msg)
	s.mu.Lock()
	s.lastErr = fmt.Errorf("%s: %w", msg, err)
	s.mu.Unlock()
}

// reconcileLoop applies the wanted set whenever Set wakes it, retrying a
// failure after retryEvery.
func (s *Speaker) reconcileLoop(ctx context.Context) {
	defer s.wg.Done()
	retry := time.NewTimer(0)
	retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-retry.C:
		}
		if err := s.reconcile(ctx); err != nil && ctx.Err() == nil {
			s.recordErr(err, "apply announcements", nil)
			retry.Reset(retryEvery)
		}
	}
}

// Stop ends the speaker. graceful=true closes every session without a BGP
// Cease, as a crash would, so peers in graceful-restart helper mode keep
// our routes until we come back; graceful=false withdraws cleanly (Cease).
func (s *Speaker) Stop(ctx context.Context, graceful bool) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	s.mu.Lock()
	running, cancel := s.running, s.cancel
	s.running = false
	s.mu.Unlock()
	if !running {
		return nil
	}
	cancel()
	s.wg.Wait()
	var errs []error
	// GoBGP v4's StopBgp keeps the peers' graceful restart when asked: it
	// closes the sessions of peers that negotiated it without a
	// NOTIFICATION, and sends the others a Cease.
	if err := s.server.StopBgp(ctx, &api.StopBgpRequest{AllowGracefulRestart: graceful}); err != nil {
		errs = append(errs, fmt.Errorf("stop BGP (graceful restart %t): %w", graceful, err))
	}
	// Stop then ends the gRPC and BFD servers. It calls StopBgp again,
	// which now fails, and GoBGP logs that as an error: expected here.
	s.gobgpLog.stopping.Store(true)
	s.server.Stop()
	if s.api != nil {
		errs = append(errs, s.api.close())
	}
	s.log.WithField("graceful_restart", graceful).Info("BGP speaker stopped")
	return errors.Join(errs...)
}
