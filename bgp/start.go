package bgp

import (
	"context"
	"fmt"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
)

// exportPolicy is the seed's `route-map IPVLAN`: only locally originated
// paths leave this host, never a peer's (no transit between leaves), and
// of those only the ones the export rules allow.
const exportPolicy = "ipvlan-export-local-only"

// Start brings the speaker up and returns once its RIB holds every wanted
// path and the neighbours are configured; sessions come up in the
// background. An error is also kept for Status: the plugin logs it and goes
// on serving Docker.
func (s *Speaker) Start(ctx context.Context) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return fmt.Errorf("BGP speaker already started")
	}
	restarting := len(s.wanted.owners) > 0
	s.mu.Unlock()
	if err := s.start(ctx, restarting); err != nil {
		s.recordErr(err, "start BGP speaker", nil)
		return err
	}
	return nil
}

func (s *Speaker) start(ctx context.Context, restarting bool) error {
	routerID := s.cfg.RouterID
	if !routerID.IsValid() {
		var err error
		if routerID, err = DefaultRouterID(); err != nil {
			return fmt.Errorf("%s unset and no default: %w", config.EnvRouterID, err)
		}
	}
	// Without its API the speaker still routes: an operator loses the gobgp
	// CLI, not the fabric, so the error is kept and shown, not fatal.
	apiSrv, err := newAPIServer(s.cfg, s.log)
	if err != nil {
		s.recordErr(err, "GoBGP API is off; BGP runs without it", nil)
		apiSrv = nil
	}
	s.gobgpLog = &slogBridge{log: s.log.WithField("part", "gobgp"), failed: s.recordErr}
	opts := []server.ServerOption{server.LoggerOption(s.gobgpLog.logger(), nil)}
	if apiSrv != nil {
		opts = append(opts, server.GrpcListenAddress(apiSrv.internalAddress()))
	}
	s.server = server.NewBgpServer(opts...)
	go s.server.Serve()
	if err := s.startGlobal(ctx, routerID.String()); err != nil {
		s.gobgpLog.stopping.Store(true)
		s.server.Stop()
		if apiSrv != nil {
			_ = apiSrv.close()
		}
		return err
	}
	s.api = apiSrv
	s.log.WithFields(logrus.Fields{"asn": s.cfg.ASN, "router_id": routerID, "port": s.cfg.ListenPort}).Info("BGP speaker started")
	s.run(ctx, restarting)
	return nil
}

// startGlobal starts the BGP instance with the export policy in place
// before any path or peer exists.
func (s *Speaker) startGlobal(ctx context.Context, routerID string) error {
	port := int32(s.cfg.ListenPort)
	if port == 0 {
		port = -1 // GoBGP's "do not listen"
	}
	global := &api.Global{Asn: s.cfg.ASN, RouterId: routerID, ListenPort: port, UseMultiplePaths: true}
	if err := s.server.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		return fmt.Errorf("start BGP (AS %d, router ID %s, port %d): %w", s.cfg.ASN, routerID, s.cfg.ListenPort, err)
	}
	policy, err := s.addExportPolicy(ctx)
	if err != nil {
		return err
	}
	assignment := &api.PolicyAssignment{
		Name: "global", Direction: api.PolicyDirection_POLICY_DIRECTION_EXPORT,
		Policies: []*api.Policy{{Name: policy}}, DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
	}
	if err := s.server.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: assignment}); err != nil {
		return fmt.Errorf("assign export policy: %w", err)
	}
	return nil
}

// run adds the wanted paths BEFORE any neighbour, so peers that kept our
// routes through a graceful restart never see them missing from our first
// update (GoBGP sends End-of-RIB soon after a session comes up), then the
// importer's watch, then the peers, then starts the background loops.
func (s *Speaker) run(ctx context.Context, restarting bool) {
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.reconcileMu.Lock()
	clear(s.announced) // a new GoBGP server starts empty, even after a Stop
	s.reconcileMu.Unlock()
	s.mu.Lock()
	s.running, s.cancel = true, cancel
	s.wanted.markAll()
	s.mu.Unlock()
	if err := s.reconcile(ctx); err != nil {
		s.recordErr(err, "add initial announcements", nil)
	}
	if err := s.startImporter(bg); err != nil {
		s.recordErr(err, "install learned routes", nil)
	}
	s.addPeers(ctx, bg, restarting)
	s.wg.Add(1)
	go s.reconcileLoop(bg)
	if s.api != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.api.serve(bg)
		}()
	}
}

// addExportPolicy puts the export rules into GoBGP as one prefix set per
// family, so that they bind every locally originated path, also one added
// through GoBGP's API, not only those the speaker adds.
func (s *Speaker) addExportPolicy(ctx context.Context) (string, error) {
	policy := &api.Policy{Name: exportPolicy}
	for _, family := range []struct {
		name string
		is4  bool
	}{{"v4", true}, {"v6", false}} {
		set := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: exportPolicy + "-" + family.name}
		for _, r := range s.exportRules {
			if r.Prefix.Addr().Is4() == family.is4 {
				set.Prefixes = append(set.Prefixes, &api.Prefix{
					IpPrefix: r.Prefix.String(), MaskLengthMin: uint32(r.MinLen), MaskLengthMax: uint32(r.MaxLen),
				})
			}
		}
		if len(set.Prefixes) == 0 {
			continue // nothing of this family may leave: the default action rejects it
		}
		if err := s.server.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: set}); err != nil {
			return "", fmt.Errorf("add export prefix set %s: %w", set.Name, err)
		}
		policy.Statements = append(policy.Statements, &api.Statement{
			Name: set.Name,
			Conditions: &api.Conditions{
				RouteType: api.Conditions_ROUTE_TYPE_LOCAL,
				PrefixSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: set.Name},
			},
			Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
		})
	}
	if err := s.server.AddPolicy(ctx, &api.AddPolicyRequest{Policy: policy}); err != nil {
		return "", fmt.Errorf("add export policy: %w", err)
	}
	return policy.Name, nil
}
