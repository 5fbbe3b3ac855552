package fib

import (
	"context"
	"errors"
	"net/netip"

	"github.com/vishvananda/netlink"
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
	t.mu.Lock()
	defer t.mu.Unlock()
	t.links = links
	var errs []error
	for prefix, r := range installed {
		if _, ok := t.wanted[prefix]; !ok {
			strays = append(strays, r)
		}
	}
	for _, r := range strays {
		errs = append(errs, t.deleteInstalled(r))
	}
	replaced := 0
	for prefix, nexthops := range t.wanted {
		if err := ctx.Err(); err != nil {
			return err
		}
		want, err := t.kernelRoute(prefix, nexthops, false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if have, ok := installed[prefix]; ok && samePaths(want, &have) {
			continue
		}
		replaced++
		errs = append(errs, t.link.replace(want))
	}
	if len(strays)+replaced > 0 {
		t.log.WithField("deleted", len(strays)).WithField("replaced", replaced).Info("kernel routes repaired")
	}
	return errors.Join(errs...)
}

// Flush deletes every route with our protocol from the table and empties the
// wanted set: the clean shutdown when peers are not to keep our routes.
func (t *Table) Flush(ctx context.Context) error {
	installed, strays, err := t.installed()
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.wanted)
	for _, r := range installed {
		strays = append(strays, r)
	}
	var errs []error
	for _, r := range strays {
		if err := ctx.Err(); err != nil {
			return err
		}
		errs = append(errs, t.deleteInstalled(r))
	}
	return errors.Join(errs...)
}

// deleteInstalled deletes a route of our protocol read from the kernel.
func (t *Table) deleteInstalled(r netlink.Route) error {
	return t.link.del(&netlink.Route{Dst: r.Dst, Table: t.table, Protocol: Protocol, Priority: r.Priority})
}

// installed reads the routes with our protocol from the kernel: ours by
// prefix, and strays (another metric, so not installed by this version).
func (t *Table) installed() (ours map[netip.Prefix]netlink.Route, strays []netlink.Route, err error) {
	ours = make(map[netip.Prefix]netlink.Route)
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		list, err := t.link.list(family, t.table, Protocol)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range list {
			prefix, ok := ipNetPrefix(r.Dst)
			if ok && r.Priority == Metric {
				ours[prefix] = r
			} else {
				strays = append(strays, r)
			}
		}
	}
	return ours, strays, nil
}
