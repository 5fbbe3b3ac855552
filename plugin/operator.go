package main

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/metrics"
	"github.com/ipvlan-bgp/ipvlan-bgp/status"
)

// sources are the plugin's parts the metrics and the status view read. A
// part that is off stays a nil interface, not a typed nil pointer.
func (p *plugin) sources() metrics.Sources {
	src := metrics.Sources{Driver: p.driver, IPAM: p.ipam}
	if p.speaker != nil {
		src.Speaker = p.speaker
	}
	if p.kernel != nil {
		src.Kernel = p.kernel
	}
	return src
}

// serveOperatorViews opens the metrics and status sockets the settings ask
// for. A failure is logged and leaves Docker's calls working.
func (p *plugin) serveOperatorViews(ctx context.Context, cfg config, calls *metrics.Calls, log *logrus.Entry) {
	src := p.sources()
	if cfg.metricsAddress != "" {
		mlog := log.WithField("component", "metrics")
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics.New(src, calls, mlog).Handler())
		serveHTTP(ctx, cfg.metricsAddress, mux, mlog)
	}
	if cfg.statusSocket != "" {
		slog := log.WithField("component", "status")
		serveHTTP(ctx, "unix:"+cfg.statusSocket, status.Handler(src, slog), slog)
	}
}

// serveHTTP serves h on address (unix:PATH or HOST:PORT) until ctx ends.
func serveHTTP(ctx context.Context, address string, h http.Handler, log *logrus.Entry) {
	log = log.WithField("address", address)
	l, err := metrics.Listen(address)
	if err != nil {
		log.WithError(err).Error("cannot listen; Docker's calls are not affected")
		return
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Error("stopped serving")
		}
	}()
	log.Info("listening")
}
