package felix

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/felix/calc"
	"github.com/tabbynet/tabby/felix/dataplane"
)

// ErrNotInSync is returned by the CNI-path calls when ctx ends before Felix
// has synced with the datastore (nothing is programmed before that).
var ErrNotInSync = errors.New("felix has not synced with the datastore yet")

// UpsertWorkload records wep at once (the datastore watch may lag) and
// waits until an apply that includes it has completed. It returns nil when
// the endpoint's routes and interface sysctls are in the kernel, that
// apply's failures for this endpoint otherwise, or ctx's error.
func (f *Felix) UpsertWorkload(ctx context.Context, wep *v3.WorkloadEndpoint) error {
	if wep == nil {
		return errors.New("upsert workload: no endpoint")
	}
	name := v3.Describe(wep)
	if wep.Spec.Node != f.node {
		return fmt.Errorf("upsert workload %s: it is for node %q, this is %q", name, wep.Spec.Node, f.node)
	}
	routes, errs := calc.WorkloadRoutes(wep)
	if len(errs) > 0 {
		return fmt.Errorf("upsert workload %s: %w", name, errors.Join(errs...))
	}
	routes = f.supported(routes)
	key := keyOf(wep)

	f.mu.Lock()
	if stored, ok := f.dsWEPs[key]; ok && sameEndpoint(stored, wep) {
		delete(f.local, key) // the datastore is already there first
	} else {
		f.local[key] = localIntent{wep: v3.Clone(wep), expires: time.Now().Add(f.cfg.LocalIntentTTL)}
	}
	f.gen++
	gen := f.gen
	f.mu.Unlock()
	f.signal()

	res, err := f.waitApplied(ctx, gen)
	if err != nil {
		return f.waitError("upsert workload "+name, err)
	}
	var failures []error
	for _, r := range routes {
		if got, ok := res.reached.Routes[r.Dst]; ok && got.Equal(r) {
			continue
		}
		failures = append(failures, routeFailure(res, r, name))
	}
	iface := wep.Spec.InterfaceName
	if _, ok := res.reached.WorkloadIfaces[iface]; !ok {
		if e := dataplane.IfaceFailure(res.err, iface); e != nil {
			failures = append(failures, e)
		} else {
			failures = append(failures, fmt.Errorf("interface %s not configured: %w", iface, orNotWanted(res.err)))
		}
	}
	if len(failures) > 0 {
		return fmt.Errorf("upsert workload %s: %w", name, errors.Join(failures...))
	}
	return nil
}

// routeFailure explains why route r of endpoint name is not in the reached state.
func routeFailure(res applyResult, r dataplane.Route, name string) error {
	if e := dataplane.RouteFailure(res.err, r.Dst); e != nil {
		return e
	}
	if d, ok := res.desired.Routes[r.Dst]; ok && !d.Equal(r) {
		for _, p := range res.problems {
			if strings.Contains(p, name) && strings.Contains(p, r.Dst.String()) {
				return fmt.Errorf("route %s: %s", r, p)
			}
		}
		return fmt.Errorf("route %s: the desired state has %s instead", r, d)
	}
	return fmt.Errorf("route %s not programmed: %w", r, orNotWanted(res.err))
}

func orNotWanted(applyErr error) error {
	if applyErr != nil {
		return applyErr
	}
	return errors.New("not in the desired state")
}

// RemoveWorkload records the removal of the endpoint at once and waits
// until an apply without it has completed. It returns nil when none of its
// routes remain, that apply's failures otherwise, or ctx's error. Removing
// an unknown endpoint is not an error.
func (f *Felix) RemoveWorkload(ctx context.Context, key v3.Key) error {
	if key.Kind == "" {
		key.Kind = "WorkloadEndpoint"
	}
	if key.Kind != "WorkloadEndpoint" {
		return fmt.Errorf("remove workload %s: not a WorkloadEndpoint key", key)
	}
	f.mu.Lock()
	old, stored := f.dsWEPs[key]
	if li, ok := f.local[key]; ok {
		old = li.wep
	}
	if stored {
		// Hide it until the datastore reports the delete.
		f.local[key] = localIntent{expires: time.Now().Add(f.cfg.LocalIntentTTL)}
	} else {
		delete(f.local, key) // the datastore has already let it go
	}
	f.gen++
	gen := f.gen
	f.mu.Unlock()
	f.signal()

	res, err := f.waitApplied(ctx, gen)
	if err != nil {
		return f.waitError("remove workload "+key.String(), err)
	}
	if old == nil {
		return nil
	}
	routes, _ := calc.WorkloadRoutes(old)
	var failures []error
	for _, r := range routes {
		// A route to the same address through another interface belongs to
		// the endpoint that has the address now.
		if got, ok := res.reached.Routes[r.Dst]; ok && got.Iface == r.Iface {
			if e := dataplane.RouteFailure(res.err, r.Dst); e != nil {
				failures = append(failures, e)
			} else {
				failures = append(failures, fmt.Errorf("route %s still programmed: %w", r, orNotWanted(res.err)))
			}
		}
	}
	if len(failures) > 0 {
		return fmt.Errorf("remove workload %s: %w", key, errors.Join(failures...))
	}
	return nil
}

func (f *Felix) waitError(what string, err error) error {
	f.mu.Lock()
	synced := f.dsInSync
	f.mu.Unlock()
	if !synced {
		return fmt.Errorf("%s: %w (%w)", what, err, ErrNotInSync)
	}
	return fmt.Errorf("%s: waiting for the dataplane: %w", what, err)
}

// CheckWorkload compares the kernel with what wep needs and returns one line
// per problem (a route missing or different, its interface missing); none
// means the endpoint's routes are in place.
func (f *Felix) CheckWorkload(wep *v3.WorkloadEndpoint) []string {
	if wep == nil {
		return []string{"no endpoint"}
	}
	routes, errs := calc.WorkloadRoutes(wep)
	var problems []string
	for _, err := range errs {
		problems = append(problems, err.Error())
	}
	kernel, err := f.dp.Check(f.supported(routes))
	if err != nil {
		return append(problems, fmt.Sprintf("read kernel routes: %v", err))
	}
	return append(problems, kernel...)
}

// supported drops IPv6 routes when IPv6 support is off, as calc does.
func (f *Felix) supported(routes []dataplane.Route) []dataplane.Route {
	if *f.cfg.IPv6Support {
		return routes
	}
	out := routes[:0:0]
	for _, r := range routes {
		if r.Dst.Addr().Is4() {
			out = append(out, r)
		}
	}
	return out
}

func keyOf(wep *v3.WorkloadEndpoint) v3.Key {
	return v3.Key{Kind: "WorkloadEndpoint", Namespace: wep.Namespace, Name: wep.Name}
}
