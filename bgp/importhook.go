package bgp

import (
	"context"

	"github.com/sirupsen/logrus"
)

// startImporter installs learned routes in the kernel when the plugin gave
// the speaker a fib.Table (Options.Kernel). It runs before any neighbour is
// added, so no learned path is missed.
func (s *Speaker) startImporter(ctx context.Context) {
	if s.kernel == nil {
		return
	}
	im := newImporter(s.kernel, s.cfg.Import, s.Owns, s.connected, s.log.WithField("part", "import"))
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
		if err := im.run(ctx, s.server); err != nil && ctx.Err() == nil {
			s.recordErr(err, "install learned routes", logrus.Fields{})
		}
	}()
}
