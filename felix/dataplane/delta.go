package dataplane

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"

	"golang.org/x/sys/unix"
)

// reconcileRoutesDelta writes only the difference between want and what
// the previous apply reached, without dumping the table. It is taken when
// the previous apply succeeded in full, so that record is what the kernel
// holds of ours; anything changed behind Tabby's back in between is
// repaired by the next full apply (Felix's periodic resync). The order is
// the full path's: adds and replaces first, deletes last. It returns the
// routes reached: the previous ones, updated with what was written.
func (r *Reconciler) reconcileRoutesDelta(want map[netip.Prefix]Route, links *linkCache) (map[netip.Prefix]Route, []error) {
	last := r.last.Routes
	// reached is built lazily: when every write succeeds it is want itself
	// (shared, read-only), so a burst of BGP routes costs no copy of the
	// table per apply; only a failure makes a copy of last to patch.
	var reached map[netip.Prefix]Route
	var done []netip.Prefix // prefixes written, for the patch after a failure
	var errs []error
	var added, replaced, deleted int
	// moved holds previous routes that must go although their prefix is
	// still wanted: the new route sits at another kernel key (metric).
	var moved []Route
	for dst, route := range want {
		old, had := last[dst]
		if had && old.Equal(route) {
			continue // already in reached
		}
		fail := func(op string, err error) {
			// The previous route, if any, is still there, and in reached.
			errs = append(errs, &RouteError{Op: op, Route: route, Err: err})
		}
		if err := route.validate(); err != nil {
			fail("validate", fmt.Errorf("%w: %v", ErrInvalidRoute, err))
			continue
		}
		if dst != route.Dst {
			fail("validate", fmt.Errorf("%w: listed under %s", ErrInvalidRoute, dst))
			continue
		}
		ifindex := 0
		if route.Iface != "" {
			idx, err := links.index(route.Iface)
			if err != nil {
				fail("resolve", err)
				continue
			}
			ifindex = idx
		}
		nr := toNetlink(route, ifindex)
		var err error
		key := desiredKey(route)
		sameKey := had && desiredKey(old) == key
		// A kept route of the previous run at this key is ours: replace it.
		replace := sameKey || r.kept[key]
		if replace {
			err = r.nl.RouteReplace(nr)
		} else {
			// Exclusive: a route of someone else at that key is refused by
			// the kernel, not overwritten.
			err = r.nl.RouteAdd(nr)
			if errors.Is(err, unix.EEXIST) {
				err = fmt.Errorf("%w: %v", ErrConflict, err)
			}
		}
		if err != nil {
			if errors.Is(err, unix.ENODEV) {
				err = fmt.Errorf("%w: %s: %v", ErrNoInterface, route.Iface, err)
			}
			fail("replace", err)
			continue
		}
		if replace {
			replaced++
		} else {
			added++
		}
		if had && !sameKey {
			moved = append(moved, old)
		}
		delete(r.kept, key) // wanted now, and in reached
		done = append(done, dst)
	}
	var gone []Route
	for dst, old := range last {
		if _, ok := want[dst]; !ok {
			gone = append(gone, old)
		}
	}
	if len(errs) == 0 {
		reached = want
	} else {
		// Some writes failed: what is there is last, plus what was written,
		// minus what goes below.
		reached = maps.Clone(last)
		if reached == nil {
			reached = map[netip.Prefix]Route{}
		}
		for _, dst := range done {
			reached[dst] = want[dst]
		}
		for _, old := range gone {
			delete(reached, old.Dst)
		}
	}
	for _, old := range append(gone, moved...) {
		// The device may be gone (a deleted veth takes its routes with it):
		// then delete without one, by destination, metric and protocol.
		ifindex := 0
		if old.Iface != "" {
			if idx, err := links.index(old.Iface); err == nil {
				ifindex = idx
			}
		}
		k := *toNetlink(old, ifindex)
		if err := r.nl.RouteDel(deleteRequest(k)); err != nil && !deleteGone(err) {
			errs = append(errs, &RouteError{Op: "delete", Route: old, Err: err})
			if _, ok := reached[old.Dst]; !ok {
				if len(errs) == 1 {
					// reached was want so far: copy before recording.
					reached = maps.Clone(reached)
				}
				reached[old.Dst] = old // it is still there
			}
			continue
		}
		deleted++
	}
	if added+replaced+deleted > 0 || len(errs) > 0 {
		r.log.Info("reconciled routes", "added", added, "replaced", replaced, "deleted", deleted,
			"failed", len(errs), "programmed", len(reached), "incremental", true)
	}
	return reached, errs
}
