package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// startImporter installs learned routes in the kernel when the plugin gave
// the speaker one (Options.Kernel). Its watch starts before any neighbour
// is added, so no learned path is missed.
func (s *Speaker) startImporter(ctx context.Context) error {
	if s.kernel == nil {
		return nil
	}
	im := newImporter(importerDeps{kernel: s.kernel, links: sessionLinks(s.server), owned: s.Owns,
		connected: s.connected, policy: s.cfg.Import, log: s.log})
	if err := feedImporter(ctx, s.server, im); err != nil {
		return err
	}
	s.mu.Lock()
	s.importer = im
	s.mu.Unlock()
	if s.connected != nil && !s.cfg.Import.AllowConnected {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.connected.Run(ctx, im.ownedChanged)
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		im.run(ctx)
	}()
	return nil
}

// feedImporter hands im GoBGP's best-path and peer events until ctx ends,
// the best paths GoBGP already holds first.
func feedImporter(ctx context.Context, srv *server.BgpServer, im *importer) error {
	callbacks := server.WatchEventMessageCallbacks{
		OnBestPath:   func(paths []*apiutil.Path, _ time.Time) { im.bestPaths(ctx, paths) },
		OnPeerUpdate: func(*apiutil.WatchEventMessage_PeerEvent, time.Time) { im.peerChanged(ctx) },
	}
	if err := srv.WatchEvent(ctx, callbacks, server.WatchBestPath(true), server.WatchPeer()); err != nil {
		return fmt.Errorf("watch GoBGP's best paths: %w", err)
	}
	return nil
}

// sessionLinks is the importer's view of srv's sessions: each peer's
// address (without zone) mapped to the interface the session runs over,
// the neighbour interface of an unnumbered session or the zone of a
// link-local neighbour address.
func sessionLinks(srv *server.BgpServer) func(context.Context) (map[netip.Addr]string, error) {
	return func(ctx context.Context) (map[netip.Addr]string, error) {
		links := make(map[netip.Addr]string)
		err := srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			for _, addr := range []string{p.GetState().GetNeighborAddress(), p.GetConf().GetNeighborAddress()} {
				a, err := netip.ParseAddr(addr)
				if err != nil {
					continue
				}
				link := p.GetConf().GetNeighborInterface()
				if link == "" {
					link = a.Zone()
				}
				if link != "" {
					links[a.WithZone("")] = link
				}
			}
		})
		if err != nil {
			return nil, fmt.Errorf("list GoBGP's peers: %w", err)
		}
		return links, nil
	}
}
