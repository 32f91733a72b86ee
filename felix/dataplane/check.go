package dataplane

import (
	"fmt"
	"slices"

	"github.com/vishvananda/netlink"
)

// Check compares the kernel with the given routes and returns one line per
// problem: a route missing, different, or shadowed by a route of another
// owner, or its interface missing. It writes nothing. The error is for a
// failure to read the kernel at all.
func (r *Reconciler) Check(routes []Route) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kernel, err := r.dumpMain()
	if err != nil {
		return nil, err
	}
	byKey := map[routeKey][]netlink.Route{}
	for _, k := range kernel {
		if key, ok := kernelKey(k); ok {
			byKey[key] = append(byKey[key], k)
		}
	}
	links := r.newLinkCache()
	var problems []string
	for _, route := range routes {
		if err := route.validate(); err != nil {
			problems = append(problems, fmt.Sprintf("route %s: invalid: %v", route, err))
			continue
		}
		ifindex := 0
		if route.Iface != "" {
			idx, err := links.index(route.Iface)
			if err != nil {
				problems = append(problems, fmt.Sprintf("route %s: %v", route, err))
				continue
			}
			ifindex = idx
		}
		atKey := byKey[desiredKey(route)]
		if slices.ContainsFunc(atKey, func(k netlink.Route) bool {
			return k.Protocol == RouteProtocol && matches(k, route, ifindex)
		}) {
			continue
		}
		if len(atKey) == 0 {
			problems = append(problems, fmt.Sprintf("route %s: missing from the kernel", route))
			continue
		}
		for _, k := range atKey {
			problems = append(problems, fmt.Sprintf("route %s: the kernel has %q instead", route, FormatKernelRoute(k, r.ifName)))
		}
	}
	return problems, nil
}
