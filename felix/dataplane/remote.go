package dataplane

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// HasRemoteRoutes reports whether the main table holds a route of ours via
// a gateway: a route to another node learned over BGP by a previous run of
// the agent. The node agent asks once at start; a yes makes the BGP speaker
// start in graceful-restart mode, so that peers keep this node's routes
// and the kernel's are reconciled rather than flushed and re-added.
func HasRemoteRoutes(nl Netlink) (bool, error) {
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		filter := &netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: RouteProtocol}
		var routes []netlink.Route
		var err error
		for attempt := 1; attempt <= maxDumpAttempts; attempt++ {
			routes, err = nl.RouteListFiltered(family, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
			if err == nil || !errors.Is(err, netlink.ErrDumpInterrupted) {
				break
			}
		}
		switch {
		case err != nil && family == netlink.FAMILY_V6 && errors.Is(err, unix.EAFNOSUPPORT):
			continue
		case err != nil:
			return false, fmt.Errorf("look for remote routes of a previous run (%s): %w", familyName(family), err)
		}
		for _, r := range routes {
			if r.Protocol == RouteProtocol && r.Type == unix.RTN_UNICAST && r.Gw != nil {
				return true, nil
			}
		}
	}
	return false, nil
}

// HasRemoteRoutes is the package function on the reconciler's kernel.
func (r *Reconciler) HasRemoteRoutes() (bool, error) { return HasRemoteRoutes(r.nl) }
