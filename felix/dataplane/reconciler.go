package dataplane

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// maxDumpAttempts bounds retries of a route dump that the kernel interrupted
// because the table changed under it (NLM_F_DUMP_INTR).
const maxDumpAttempts = 10

// Reconciler makes the kernel's main routing table and workload sysctls match
// a State. It is safe for concurrent use; calls are serialised.
type Reconciler struct {
	nl  Netlink
	sys Sysctls
	log *slog.Logger

	mu sync.Mutex
	// configured remembers, per workload interface, the ifindex whose
	// sysctls were written: a veth deleted and re-created under the same
	// name gets a new ifindex and so gets its sysctls again.
	configured map[string]ifaceConfig
	// ifNames remembers names of ifindexes seen through LinkByName, to
	// describe routes found in the kernel.
	ifNames map[int]string
	last    State
	// trusted says last is what the kernel holds of ours: the previous
	// apply succeeded in full. Only then may an Incremental apply skip the
	// dump.
	trusted bool
	// kept are the remote routes of a previous run that the last full
	// apply left in place (KeepRemoteRoutes) without wanting them, by
	// kernel key. They are ours but not in last: an incremental apply
	// that wants their key replaces them (an exclusive add would fail as
	// if another owner held the prefix).
	kept map[routeKey]bool
}

type ifaceConfig struct {
	index  int
	v4, v6 bool
}

// NewReconciler returns a reconciler over the two kernel seams. For the real
// kernel of the current namespace: NewReconciler(netlink handle, ProcSys{}, log).
func NewReconciler(nl Netlink, sys Sysctls, log *slog.Logger) *Reconciler {
	return &Reconciler{
		nl:         nl,
		sys:        sys,
		log:        log,
		configured: map[string]ifaceConfig{},
		ifNames:    map[int]string{},
		last:       NewState(),
		kept:       map[routeKey]bool{},
	}
}

// Apply makes the kernel match want and returns the state it actually
// reached (read-only: the reconciler keeps it as its record) with the
// joined failures (*RouteError, *IfaceError, ...). It dumps
// the main table once per family, keeps only protocol-98 routes as its own,
// adds or replaces every missing or different route before deleting any
// stale one, and keeps going after a failure, so one bad route never holds
// back the others. Calling it again with the same State is cheap and changes
// nothing; calling it after a failure retries exactly what failed.
func (r *Reconciler) Apply(want State) (State, error) {
	r.mu.Lock()
	defer r.mu.Unlock()

	reached := NewState()
	var errs []error
	links := r.newLinkCache()

	if want.IPv4Forwarding {
		if err := r.ensureSysctl("net/ipv4/ip_forward", "1"); err != nil {
			errs = append(errs, fmt.Errorf("enable IPv4 forwarding: %w", err))
		} else {
			reached.IPv4Forwarding = true
		}
	}
	if want.IPv6Forwarding {
		if err := r.ensureSysctl("net/ipv6/conf/all/forwarding", "1"); err != nil {
			errs = append(errs, fmt.Errorf("enable IPv6 forwarding: %w", err))
		} else {
			reached.IPv6Forwarding = true
		}
	}

	var kernel []netlink.Route
	if want.Incremental && r.trusted {
		var derrs []error
		reached.Routes, derrs = r.reconcileRoutesDelta(want.Routes, links)
		errs = append(errs, derrs...)
	} else if k, err := r.dumpMain(); err != nil {
		// Without the kernel's view no diff is safe; what we last reached
		// is the best description of what is there.
		errs = append(errs, err)
		reached.Routes = maps.Clone(r.last.Routes)
	} else {
		kernel = k
		// Sized up front: growing a map of 100k BGP routes costs more than
		// filling it.
		reached.Routes = make(map[netip.Prefix]Route, len(want.Routes))
		errs = append(errs, r.reconcileRoutes(want.Routes, want.KeepRemoteRoutes, kernel, links, reached.Routes)...)
	}

	errs = append(errs, r.configureIfaces(want, links, reached.WorkloadIfaces)...)

	// Forget names of interfaces neither looked up now nor used by a route:
	// with pod churn, ifindexes only grow. (Only with a dump in hand: an
	// incremental apply does not see every route.)
	if kernel != nil {
		inUse := map[int]bool{}
		for _, k := range kernel {
			inUse[k.LinkIndex] = true
		}
		for _, res := range links.cache {
			inUse[res.index] = true
		}
		maps.DeleteFunc(r.ifNames, func(idx int, _ string) bool { return !inUse[idx] })
	}

	// Shared, not copied: neither side modifies a State after Apply (an
	// incremental apply copies last before changing it), and copying 100k
	// routes per apply showed in profiles.
	r.last = reached
	err := errors.Join(errs...)
	r.trusted = err == nil
	return reached, err
}

// linkCache resolves each interface name at most once per apply.
type linkCache struct {
	r     *Reconciler
	cache map[string]linkResult
}

type linkResult struct {
	index int
	err   error
}

func (r *Reconciler) newLinkCache() *linkCache {
	return &linkCache{r: r, cache: map[string]linkResult{}}
}

func (c *linkCache) index(name string) (int, error) {
	if res, ok := c.cache[name]; ok {
		return res.index, res.err
	}
	var res linkResult
	link, err := c.r.nl.LinkByName(name)
	switch {
	case err == nil:
		res.index = link.Attrs().Index
		c.r.ifNames[res.index] = name
	case isLinkNotFound(err):
		res.err = fmt.Errorf("%w: %s", ErrNoInterface, name)
	default:
		res.err = fmt.Errorf("look up interface %s: %w", name, err)
	}
	c.cache[name] = res
	return res.index, res.err
}

func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

func (r *Reconciler) ifName(index int) string {
	if n, ok := r.ifNames[index]; ok {
		return n
	}
	return fmt.Sprintf("if%d", index)
}

// dumpMain returns the main table's IPv4 and IPv6 routes.
func (r *Reconciler) dumpMain() ([]netlink.Route, error) {
	var out []netlink.Route
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := r.dumpFamily(family)
		if err != nil {
			return nil, err
		}
		out = append(out, routes...)
	}
	return out, nil
}

func (r *Reconciler) dumpFamily(family int) ([]netlink.Route, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_MAIN}
	for attempt := 1; ; attempt++ {
		routes, err := r.nl.RouteListFiltered(family, filter, netlink.RT_FILTER_TABLE)
		switch {
		case err == nil:
			return routes, nil
		case errors.Is(err, netlink.ErrDumpInterrupted) && attempt < maxDumpAttempts:
			continue // the table changed while being dumped: read it again
		case family == netlink.FAMILY_V6 && errors.Is(err, unix.EAFNOSUPPORT):
			return nil, nil // a kernel without IPv6 has no IPv6 routes to own
		default:
			return nil, fmt.Errorf("dump the main routing table (%s): %w", familyName(family), err)
		}
	}
}

func familyName(family int) string {
	if family == netlink.FAMILY_V6 {
		return "IPv6"
	}
	return "IPv4"
}

// reconcileRoutes is the route diff: adds and replaces first, deletes last.
// Successfully programmed or already correct routes go into reached.
func (r *Reconciler) reconcileRoutes(want map[netip.Prefix]Route, keepRemote bool, kernel []netlink.Route, links *linkCache, reached map[netip.Prefix]Route) []error {
	ours := map[routeKey][]netlink.Route{}
	foreign := map[routeKey]netlink.Route{}
	for _, k := range kernel {
		key, ok := kernelKey(k)
		if !ok {
			continue
		}
		if k.Protocol == RouteProtocol {
			ours[key] = append(ours[key], k)
		} else if _, dup := foreign[key]; !dup {
			foreign[key] = k
		}
	}

	var errs []error
	var added, replaced, deleted, kept int
	clear(r.kept)
	// What happened at each key holding a desired route: matched keys keep
	// the matching route and lose any extra copy of ours; written keys are
	// never pruned in this pass, because the route there was overwritten in
	// place and a delete by the old attributes could hit the new route.
	type outcome struct {
		route   Route
		ifindex int
		written bool
	}
	settled := map[routeKey]outcome{}
	for _, dst := range SortedPrefixes(want) {
		route := want[dst]
		fail := func(op string, err error) {
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
		key := desiredKey(route)
		if f, ok := foreign[key]; ok {
			fail("replace", fmt.Errorf("%w: %s", ErrConflict, FormatKernelRoute(f, r.ifName)))
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
		existing := ours[key]
		if slices.ContainsFunc(existing, func(k netlink.Route) bool { return matches(k, route, ifindex) }) {
			reached[dst] = route
			settled[key] = outcome{route: route, ifindex: ifindex}
			continue
		}
		nr := toNetlink(route, ifindex)
		var err error
		if len(existing) == 0 {
			// Exclusive add where nothing of ours is: if a route of someone
			// else appeared since the dump, the kernel refuses (EEXIST)
			// instead of letting us overwrite it.
			err = r.nl.RouteAdd(nr)
			if errors.Is(err, unix.EEXIST) {
				err = fmt.Errorf("%w (it appeared after the dump): %v", ErrConflict, err)
			}
		} else {
			err = r.nl.RouteReplace(nr)
		}
		if err != nil {
			if errors.Is(err, unix.ENODEV) {
				err = fmt.Errorf("%w: %s: %v", ErrNoInterface, route.Iface, err)
			}
			fail("replace", err)
			continue
		}
		if len(existing) == 0 {
			added++
		} else {
			replaced++
		}
		r.log.Debug("programmed route", "route", route.String(), "source", route.Source.String())
		reached[dst] = route
		settled[key] = outcome{route: route, ifindex: ifindex, written: true}
	}

	for _, key := range sortedKeys(ours) {
		for _, k := range ours[key] {
			if o, ok := settled[key]; ok && (o.written || matches(k, o.route, o.ifindex)) {
				continue
			}
			if _, listed := settled[key]; keepRemote && !listed && k.Type == unix.RTN_UNICAST && k.Gw != nil {
				kept++ // a remote route of the previous run, until BGP has synced
				r.kept[key] = true
				continue
			}
			if err := r.nl.RouteDel(deleteRequest(k)); err != nil && !deleteGone(err) {
				stale := r.fromKernel(k)
				errs = append(errs, &RouteError{Op: "delete", Route: stale, Err: err})
				if _, ok := reached[stale.Dst]; !ok {
					reached[stale.Dst] = stale // it is still there
				}
				continue
			}
			deleted++
			r.log.Debug("deleted stale route", "route", FormatKernelRoute(k, r.ifName))
		}
	}
	if added+replaced+deleted > 0 || len(errs) > 0 {
		r.log.Info("reconciled routes", "added", added, "replaced", replaced, "deleted", deleted,
			"failed", len(errs), "programmed", len(reached), "keptUntilBGPSync", kept)
	}
	return errs
}

// fromKernel describes a kernel route of ours in the desired-state form.
func (r *Reconciler) fromKernel(k netlink.Route) Route {
	dst, _ := KernelDst(k)
	route := Route{
		Dst:     dst,
		Gateway: addrOf(k.Gw),
		OnLink:  k.Flags&int(netlink.FLAG_ONLINK) != 0,
		Scope:   Scope(k.Scope),
		Metric:  k.Priority,
		MTU:     k.MTU,
	}
	if dst.Addr().Is6() && route.Metric == ipv6DefaultMetric {
		route.Metric = 0
	}
	if k.Type == unix.RTN_BLACKHOLE {
		route.Type = Blackhole
	} else if k.LinkIndex > 0 {
		route.Iface = r.ifName(k.LinkIndex)
	}
	return route
}

func deleteGone(err error) bool {
	// ESRCH: no such route. ENODEV: its device is gone, and the kernel
	// removed the device's routes with it.
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV)
}

func sortedKeys[V any](m map[routeKey]V) []routeKey {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b routeKey) int {
		if c := ComparePrefix(a.dst, b.dst); c != 0 {
			return c
		}
		if a.metric != b.metric {
			return a.metric - b.metric
		}
		return a.tos - b.tos
	})
	return keys
}
