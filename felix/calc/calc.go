package calc

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/felix/dataplane"
)

// Input is everything the desired state is computed from.
type Input struct {
	// NodeName is this node; resources of other nodes are ignored.
	NodeName string
	// Workloads are workload endpoints (those of other nodes are ignored).
	Workloads []*v3.WorkloadEndpoint
	// Affinities are block affinities; this node's confirmed ones become
	// blackhole routes.
	Affinities []*v3.BlockAffinity
	// RemoteRoutes maps a remote prefix (another node's block, or a
	// borrowed /32) to its next hop, the other node's address. BGP fills
	// it in a later issue, which also adds the encapsulation choice.
	RemoteRoutes map[netip.Prefix]netip.Addr
	// IPForwarding: make sure net.ipv4.ip_forward is on (Calico's
	// IPForwarding=Enabled, its default).
	IPForwarding bool
	// IPv6Support: program IPv6 routes, forwarding and the IPv6 workload
	// sysctls (Calico's ipv6Support). Without it IPv6 addresses and blocks
	// are ignored, as Calico does.
	IPv6Support bool
}

// Compute returns the desired state and the problems met on the way (an
// endpoint without an interface, an unparsable address, two producers
// wanting the same prefix...), one line each, sorted. Problems do not stop
// the rest of the state from being computed.
func Compute(in Input) (dataplane.State, []string) {
	s := dataplane.NewState()
	s.Routes = make(map[netip.Prefix]dataplane.Route, len(in.RemoteRoutes)+len(in.Workloads)+len(in.Affinities))
	s.IPv4Forwarding = in.IPForwarding
	s.IPv6Forwarding = in.IPv6Support
	var problems []string
	// owner names who holds each prefix, for problem messages.
	owner := map[netip.Prefix]string{}

	weps := slices.Clone(in.Workloads)
	slices.SortFunc(weps, func(a, b *v3.WorkloadEndpoint) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	for _, wep := range weps {
		if wep == nil || wep.Spec.Node != in.NodeName {
			continue
		}
		name := v3.Describe(wep)
		routes, errs := WorkloadRoutes(wep)
		for _, err := range errs {
			problems = append(problems, fmt.Sprintf("%s: %v", name, err))
		}
		if wep.Spec.InterfaceName == "" {
			continue
		}
		s.AddIface(wep.Spec.InterfaceName)
		for _, r := range routes {
			if r.Dst.Addr().Is6() && !in.IPv6Support {
				continue
			}
			if prev, taken := owner[r.Dst]; taken {
				// Two endpoints with one address: keep the first in name
				// order (stable across restarts) and say so.
				problems = append(problems, fmt.Sprintf("%s: address %s is also used by %s, which keeps the route", name, r.Dst, prev))
				continue
			}
			owner[r.Dst] = name
			s.AddRoute(r)
		}
	}

	blocks, blockProblems := BlockRoutes(in.NodeName, in.Affinities)
	problems = append(problems, blockProblems...)
	for _, r := range blocks {
		if r.Dst.Addr().Is6() && !in.IPv6Support {
			continue
		}
		if prev, taken := owner[r.Dst]; taken {
			problems = append(problems, fmt.Sprintf("block %s: the prefix is also a workload address of %s, which keeps the route", r.Dst, prev))
			continue
		}
		owner[r.Dst] = "this node's block " + r.Dst.String()
		s.AddRoute(r)
	}

	// Map order is fine here and saves sorting 100k BGP routes per pass:
	// remote routes only yield to local ones (already in owner), never to
	// each other, and problems are sorted at the end.
	for dst, nh := range in.RemoteRoutes {
		switch {
		case dst != dst.Masked() || !nh.IsValid() || nh.Is4() != dst.Addr().Is4():
			problems = append(problems, fmt.Sprintf("remote route %s via %s: invalid", dst, nh))
			continue
		case dst.Addr().Is6() && !in.IPv6Support:
			continue
		}
		if prev, taken := owner[dst]; taken {
			// Local knowledge wins: a block claimed by two nodes, or a stale
			// advertisement of an address that now lives here.
			problems = append(problems, fmt.Sprintf("remote route %s via %s: ignored, the prefix is local (%s)", dst, nh, prev))
			continue
		}
		source := dataplane.SourceRemoteBlock
		if dst.IsSingleIP() {
			source = dataplane.SourceRemoteWorkload
		}
		s.AddRoute(dataplane.Route{Dst: dst, Gateway: nh, Source: source})
	}
	slices.Sort(problems)
	return s, problems
}

// WorkloadRoutes returns the routes of one endpoint, whatever its node:
// `<ip>/32 dev <interfaceName> scope link` per spec.ipNetworks entry (/128
// for IPv6). An entry wider than a host prefix is routed as given, as Calico
// does. Entries that do not parse are returned as errors.
func WorkloadRoutes(wep *v3.WorkloadEndpoint) ([]dataplane.Route, []error) {
	var errs []error
	iface := wep.Spec.InterfaceName
	if iface == "" {
		return nil, []error{fmt.Errorf("no interfaceName, so no route")}
	}
	var routes []dataplane.Route
	for _, n := range wep.Spec.IPNetworks {
		dst, err := parseIPNetwork(n)
		if err != nil {
			errs = append(errs, fmt.Errorf("ipNetworks entry %q: %w", n, err))
			continue
		}
		routes = append(routes, dataplane.Route{
			Dst:    dst,
			Iface:  iface,
			Scope:  dataplane.ScopeLink,
			Source: dataplane.SourceLocalWorkload,
		})
	}
	return routes, errs
}

func parseIPNetwork(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("IPv4-mapped IPv6 address")
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("zoned address")
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// BlockRoutes returns `blackhole <block>` for every confirmed, not deleted,
// host affinity of node, sorted and without duplicates, and a problem line
// per affinity whose CIDR does not parse.
func BlockRoutes(node string, affinities []*v3.BlockAffinity) ([]dataplane.Route, []string) {
	seen := map[netip.Prefix]bool{}
	var out []dataplane.Route
	var problems []string
	for _, a := range affinities {
		if !OwnsBlock(node, a) {
			continue
		}
		block, err := netip.ParsePrefix(a.Spec.CIDR)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: cidr %q: %v", v3.Describe(a), a.Spec.CIDR, err))
			continue
		}
		if seen[block.Masked()] {
			continue
		}
		seen[block.Masked()] = true
		out = append(out, dataplane.Route{Dst: block.Masked(), Type: dataplane.Blackhole, Source: dataplane.SourceLocalBlock})
	}
	slices.SortFunc(out, func(a, b dataplane.Route) int { return dataplane.ComparePrefix(a.Dst, b.Dst) })
	return out, problems
}

// OwnsBlock reports whether a is a confirmed, live host affinity of node: a
// pending claim may still lose its race, and a block being released must not
// keep attracting traffic.
func OwnsBlock(node string, a *v3.BlockAffinity) bool {
	return a != nil && a.Spec.Node == node && a.Spec.State == v3.AffinityStateConfirmed &&
		!a.Spec.Deleted && (a.Spec.Type == "" || a.Spec.Type == "host")
}
