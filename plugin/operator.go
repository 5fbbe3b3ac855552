package main

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/observe"
	"github.com/ipvlan-bgp/ipvlan-bgp/metrics"
	"github.com/ipvlan-bgp/ipvlan-bgp/status"
)

// sources are the plugin's parts the metrics and the status view read. A
// part that is off stays a nil interface, not a typed nil pointer.
func (p *plugin) sources() observe.Sources {
	src := observe.Sources{Driver: p.driver, IPAM: p.ipam}
	if p.speaker != nil {
		src.Speaker = p.speaker
	}
	if p.kernel != nil {
		src.Kernel = p.kernel
	}
	return src
}

// serveOperatorViews opens the metrics and status sockets the settings ask
// for, serving until stop. A failure is logged and leaves Docker's calls
// working.
func (p *plugin) serveOperatorViews(cfg config, calls *metrics.Calls, log *logrus.Entry) {
	src := p.sources()
	if cfg.metricsAddress != "" {
		mlog := log.WithField("serving", "metrics")
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics.New(src, calls, mlog).Handler())
		p.serveHTTP(cfg.metricsAddress, mux, mlog)
	}
	if cfg.statusSocket != "" {
		slog := log.WithField("serving", "status")
		p.serveHTTP("unix:"+cfg.statusSocket, status.Handler(src, slog), slog)
	}
}

// serveHTTP serves h on address (unix:PATH or HOST:PORT) until stop.
func (p *plugin) serveHTTP(address string, h http.Handler, log *logrus.Entry) {
	log = log.WithField("address", address)
	l, err := metrics.Listen(address)
	if err != nil {
		log.WithError(err).Error("cannot listen; Docker's calls are not affected")
		return
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	p.spawn(func() {
		<-p.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	p.spawn(func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Error("stopped serving")
		}
	})
	log.Info("listening")
}
