package fib

import (
	"context"
	"net/netip"
)

// Replace is ReplaceBatch for one route, its refusal as the error: the
// tests' shorthand.
func (t *Table) Replace(ctx context.Context, prefix netip.Prefix, nexthops []Nexthop) error {
	refused, err := t.ReplaceBatch(ctx, []Route{{Prefix: prefix, Nexthops: nexthops}})
	if err != nil {
		return err
	}
	if len(refused) > 0 {
		return &refused[0]
	}
	return nil
}

// Remove forgets prefix and deletes its route; removing an absent route is
// not an error.
func (t *Table) Remove(ctx context.Context, prefix netip.Prefix) error {
	return t.Replace(ctx, prefix, nil)
}
