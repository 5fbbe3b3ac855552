// Command ipvlan-bgp is the plugin's binary: it reads the settings, listens
// on the plugin socket at once, then restores state, reconciles the kernel
// and starts the BGP speaker, and serves Docker until it is told to stop.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/writer"

	"github.com/ipvlan-bgp/ipvlan-bgp/api"
	"github.com/ipvlan-bgp/ipvlan-bgp/bgp"
	bgpconfig "github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
	"github.com/ipvlan-bgp/ipvlan-bgp/driver"
	"github.com/ipvlan-bgp/ipvlan-bgp/fib"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/failpoint"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/logs"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/route"
	"github.com/ipvlan-bgp/ipvlan-bgp/ipam"
	"github.com/ipvlan-bgp/ipvlan-bgp/metrics"
	"github.com/ipvlan-bgp/ipvlan-bgp/store"
)

const (
	// stateFile is the store's name inside STATE_DIR.
	stateFile = "ipvlan-bgp.db"
	// kernelResync is how often learned routes are checked against the
	// kernel, restoring any deleted by hand.
	kernelResync = 30 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "status" {
		os.Exit(statusCommand(ctx, os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	if err := run(ctx, os.Getenv, logOutput{lines: os.Stdout, errors: os.Stderr}); err != nil {
		fmt.Fprintln(os.Stderr, "ipvlan-bgp:", err)
		os.Exit(1)
	}
}

// run is the plugin: it serves Docker until ctx ends, logging to logOut.
func run(ctx context.Context, getenv func(string) string, logOut logOutput) error {
	started := time.Now()
	cfg, cfgErr := loadConfig(getenv)
	log := newLogger(cfg, logOut)
	failpoint.Enable(cfg.stateDir)
	listener, err := api.Listen(cfg.socket)
	if err != nil {
		return err
	}
	server := api.NewServer(log)
	// Counted from the first call, before the drivers exist.
	calls := metrics.NewCalls()
	server.SetObserver(calls)
	served := make(chan error, 1)
	go func() { served <- server.Serve(ctx, listener) }()
	log.WithFields(logrus.Fields{"socket": cfg.socket, "after": time.Since(started)}).Info("listening for Docker")

	p, err := start(ctx, cfg, cfgErr, getenv, log, calls)
	if err != nil {
		log.WithError(err).Error("start-up failed: every Docker call will answer with this error")
		server.Fail(err)
	} else {
		server.Ready(p.driver, p.ipam)
		p.serveOperatorViews(cfg, calls, log)
		log.WithFields(logrus.Fields{"after": time.Since(started), "networks": len(p.driver.Networks()), "endpoints": len(p.driver.Endpoints())}).
			Info("ready: state restored, kernel reconciled, BGP started")
	}
	select {
	case <-ctx.Done():
		log.Info("stopping")
		err = <-served // the calls in flight finish before their state goes
	case err = <-served:
	}
	if p != nil {
		p.stop(log)
	}
	return err
}

// logOutput is where the log lines go: errors apart from the rest, because
// dockerd logs a managed plugin's standard output at its level info and its
// standard error at level error, whatever the line says. With every line on
// standard error, dockerd's log would call each container's announcement an
// error.
type logOutput struct {
	lines  io.Writer // debug, info, warning
	errors io.Writer // error, fatal, panic
}

func newLogger(cfg config, out logOutput) *logrus.Entry {
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.AddHook(&writer.Hook{Writer: out.errors, LogLevels: []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel}})
	log.AddHook(&writer.Hook{Writer: out.lines, LogLevels: []logrus.Level{logrus.WarnLevel, logrus.InfoLevel, logrus.DebugLevel, logrus.TraceLevel}})
	if cfg.logFormat == "json" {
		log.SetFormatter(&logrus.JSONFormatter{})
	}
	level, err := logrus.ParseLevel(cfg.logLevel)
	if err != nil {
		log.WithField("setting", "LOG_LEVEL").WithField("value", cfg.logLevel).Warn("unknown log level, using info")
		level = logrus.InfoLevel
	}
	log.SetLevel(level)
	return logs.For(logrus.NewEntry(log), "plugin")
}

// plugin is everything start built, for a clean stop.
type plugin struct {
	db       *store.DB
	driver   *driver.Driver
	ipam     *ipam.IPAM
	speaker  *bgp.Speaker
	kernel   *fib.Table // routes learned over BGP; nil when BGP is off
	graceful bool

	// The background work (kernel resync, address sweep, operator views)
	// runs until stop cancels it and waits for it, before anything it uses
	// is closed.
	bg         context.Context
	cancel     context.CancelFunc
	background sync.WaitGroup
}

// spawn runs fn in the background until stop.
func (p *plugin) spawn(fn func()) {
	p.background.Add(1)
	go func() {
		defer p.background.Done()
		fn()
	}()
}

// start opens the state, builds the drivers, reconciles the kernel with the
// stored state and then starts BGP, in that order: the speaker must hold
// every stored route before its sessions come up (graceful restart). A BGP
// failure is logged and leaves Docker's calls working.
func start(ctx context.Context, cfg config, cfgErr error, getenv func(string) string, log *logrus.Entry, calls *metrics.Calls) (*plugin, error) {
	if cfgErr != nil {
		return nil, cfgErr
	}
	if err := os.MkdirAll(cfg.stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w", cfg.stateDir, err)
	}
	db, err := store.Open(filepath.Join(cfg.stateDir, stateFile))
	if err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &plugin{db: db, bg: bg, cancel: cancel}
	p.ipam, err = ipam.New(ipam.Config{
		Store: db, DefaultPools: cfg.defaultPools, DefaultV4Len: cfg.defaultV4Len,
		DefaultV6Len: cfg.defaultV6Len, LocalRanges: cfg.localRanges, ClaimWindow: cfg.claimWindow,
		Log: log,
	})
	if err != nil {
		cancel()
		db.Close()
		return nil, err
	}
	var announcer route.Announcer = route.Discard{}
	p.speaker, p.kernel, p.graceful, err = newSpeaker(getenv, log)
	if err != nil {
		log.WithError(err).Error("BGP is off: fix the BGP settings and re-enable the plugin; containers still get networks")
	} else {
		announcer = p.speaker
	}
	p.driver, err = driver.New(driver.Config{
		Store: db, Announcer: announcer, Ranges: p.ipam, Log: log,
		RouteBudget: cfg.routeBudget, BudgetFallback: cfg.budgetFallback,
	})
	if err != nil {
		cancel()
		db.Close()
		return nil, err
	}
	p.ipam.SetUsers(p.driver)
	p.spawn(func() { p.sweepAddresses(bg, log) })
	if err := p.driver.Reconcile(ctx); err != nil {
		calls.CountError(err)
		log.WithError(err).Error("reconciling the kernel with the stored state failed; continuing with what was restored")
	}
	if p.speaker != nil {
		if err := p.speaker.Start(ctx); err != nil {
			log.WithError(err).Error("BGP speaker failed to start; containers still get networks")
		}
		// The first resync comes a full period after start: by then the
		// sessions have replayed what they still send, so only routes kept
		// from the previous run that nobody sends any more are removed.
		p.spawn(func() { p.kernel.Run(bg, kernelResync) })
	}
	return p, nil
}

// sweepAddresses releases, every so often, the container addresses a crash
// left without a container (ipam.Sweep).
func (p *plugin) sweepAddresses(ctx context.Context, log *logrus.Entry) {
	tick := time.NewTicker(p.ipam.SweepEvery())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := p.ipam.Sweep(ctx); err != nil && ctx.Err() == nil {
				log.WithError(err).Warn("releasing addresses no container holds")
			}
		}
	}
}

func newSpeaker(getenv func(string) string, log *logrus.Entry) (*bgp.Speaker, *fib.Table, bool, error) {
	cfg, err := bgpconfig.Load(getenv)
	if err != nil {
		return nil, nil, false, err
	}
	table, err := fib.New(fib.Config{Log: log})
	if err != nil {
		return nil, nil, false, fmt.Errorf("open kernel route table: %w", err)
	}
	connected, err := fib.NewConnected(log)
	if err != nil {
		table.Close()
		return nil, nil, false, err
	}
	speaker := bgp.NewSpeaker(cfg, bgp.Options{Kernel: table, Connected: connected, Log: log})
	return speaker, table, cfg.GracefulRestart.Enabled, nil
}

// stop ends BGP (without a Cease when graceful restart is on, so peers keep
// forwarding to our containers while a new plugin starts, and the kernel
// keeps the learned routes) and closes the state file.
func (p *plugin) stop(log *logrus.Entry) {
	p.cancel()
	p.background.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if p.speaker != nil {
		if err := p.speaker.Stop(ctx, p.graceful); err != nil && !errors.Is(err, context.Canceled) {
			log.WithError(err).Warn("stopping BGP")
		}
		// With graceful restart the learned routes keep forwarding until the
		// next run relearns them; without it they go with the sessions.
		if !p.graceful {
			if err := p.kernel.Flush(ctx); err != nil {
				log.WithError(err).Warn("removing learned routes from the kernel")
			}
		}
		p.kernel.Close()
	}
	p.driver.Close()
	if err := p.db.Close(); err != nil {
		log.WithError(err).Warn("closing the state file")
	}
}
