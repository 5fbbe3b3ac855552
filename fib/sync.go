package fib

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"
)

// Sync makes the kernel match the wanted set: it re-installs our routes that
// are missing or were changed, and deletes routes with our protocol that are
// not wanted. It reads the table once per address family.
func (t *Table) Sync(ctx context.Context) error {
	installed, strays, err := t.installed()
	if err != nil {
		return err
	}
	links, err := t.link.linkIndexes()
	if err != nil {
		return err
	}
	// The dump happened before the lock: a route changed since is either
	// wanted (replacing it again is harmless) or not (deleting it again is).
	var ops []routeOp
	refused := t.change(ctx, func() ([]routeOp, []RouteError) {
		t.links = links
		var refused []RouteError
		ops, refused = t.repairs(installed, strays)
		return ops, refused
	})
	if len(ops) > 0 {
		deleted := 0
		for _, op := range ops {
			if op.paths == nil {
				deleted++
			}
		}
		t.log.WithField("deleted", deleted).WithField("replaced", len(ops)-deleted).Info("kernel routes repaired")
	}
	return joinRefused(refused, ctx.Err())
}

// repairs lists the writes that make the kernel's routes (installed,
// strays) the wanted set, and the wanted routes that cannot be written
// (a missing interface). t.mu must be held.
func (t *Table) repairs(installed map[netip.Prefix][]path, strays []routeOp) ([]routeOp, []RouteError) {
	ops := strays
	for prefix := range installed {
		if _, ok := t.wanted[prefix]; !ok {
			ops = append(ops, routeOp{prefix: prefix, metric: Metric})
		}
	}
	var refused []RouteError
	refresh := false // the links were just read
	var shared sharedPaths
	for prefix, nexthops := range t.wanted {
		paths, err := shared.of(t, nexthops, &refresh)
		if err != nil {
			refused = append(refused, RouteError{Prefix: prefix, Err: err})
			continue
		}
		if have, ok := installed[prefix]; ok && samePaths(paths, have) {
			continue
		}
		ops = append(ops, routeOp{prefix: prefix, paths: paths, metric: Metric})
	}
	return ops, refused
}

// sharedPaths resolves a next-hop set once for all the routes sharing it
// (see Table.lastSet), sorted as samePaths wants them.
type sharedPaths struct {
	set   []Nexthop
	paths []path
	err   error
}

func (s *sharedPaths) of(t *Table, nexthops []Nexthop, refresh *bool) ([]path, error) {
	if len(s.set) == 0 || len(s.set) != len(nexthops) || &s.set[0] != &nexthops[0] {
		s.set = nexthops
		s.paths, s.err = t.kernelPaths(nexthops, refresh)
		slices.SortFunc(s.paths, comparePath)
	}
	return s.paths, s.err
}

// Flush deletes every route with our protocol from the table and empties the
// wanted set: the clean shutdown when peers are not to keep our routes.
func (t *Table) Flush(ctx context.Context) error {
	installed, ops, err := t.installed()
	if err != nil {
		return err
	}
	for prefix := range installed {
		ops = append(ops, routeOp{prefix: prefix, metric: Metric})
	}
	refused := t.change(ctx, func() ([]routeOp, []RouteError) {
		clear(t.wanted)
		return ops, nil
	})
	return joinRefused(refused, ctx.Err())
}

// joinRefused is the error of a whole-table operation: every refused route,
// and ctx's error when it ended first.
func joinRefused(refused []RouteError, ctxErr error) error {
	if ctxErr != nil {
		return ctxErr
	}
	errs := make([]error, len(refused))
	for i := range refused {
		errs[i] = &refused[i]
	}
	return errors.Join(errs...)
}

// installed reads the routes with our protocol from the kernel: the paths
// of ours by prefix, and the deletes of strays (another metric, so not
// installed by this version). Routes with equal paths share one slice, as
// in the wanted set, so a full table costs a map entry per route.
func (t *Table) installed() (ours map[netip.Prefix][]path, strays []routeOp, err error) {
	ours = make(map[netip.Prefix][]path)
	var last []path
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		familyStrays := len(strays)
		restart := func() {
			maps.DeleteFunc(ours, func(prefix netip.Prefix, _ []path) bool { return prefix.Addr().Is4() == (family == unix.AF_INET) })
			strays = strays[:familyStrays]
		}
		err := t.link.routes.each(family, uint32(t.table), uint8(Protocol), restart, func(r kernelRoute) {
			if r.metric != Metric {
				strays = append(strays, routeOp{prefix: r.prefix, metric: r.metric})
				return
			}
			if !slices.Equal(last, r.paths) {
				last = slices.Clone(r.paths)
			}
			ours[r.prefix] = last
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return ours, strays, nil
}
