package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	v3 "github.com/tabbynet/tabby/api/v3"
)

// KernelRoute is one IPv4 main-table route as the lab compares them.
type KernelRoute struct {
	Dst       netip.Prefix
	Blackhole bool
	Dev       string       // output interface ("" for a blackhole)
	Via       []netip.Addr // gateways (several for ECMP), sorted
	Protocol  int
	Metric    int
}

func (r KernelRoute) String() string {
	var b strings.Builder
	if r.Blackhole {
		b.WriteString("blackhole ")
	}
	b.WriteString(r.Dst.String())
	for _, g := range r.Via {
		b.WriteString(" via " + g.String())
	}
	if r.Dev != "" {
		b.WriteString(" dev " + r.Dev)
	}
	fmt.Fprintf(&b, " proto %d", r.Protocol)
	if r.Metric != 0 {
		fmt.Fprintf(&b, " metric %d", r.Metric)
	}
	return b.String()
}

// Routes lists the IPv4 main-table routes of namespace n with protocol
// proto (any protocol when proto < 0).
func (n *NetNS) Routes(proto int) ([]KernelRoute, error) {
	var out []KernelRoute
	err := n.Netlink(func(h *netlink.Handle) error {
		filter := &netlink.Route{Table: unix.RT_TABLE_MAIN}
		mask := uint64(netlink.RT_FILTER_TABLE)
		if proto >= 0 {
			filter.Protocol = netlink.RouteProtocol(proto)
			mask |= netlink.RT_FILTER_PROTOCOL
		}
		rs, err := h.RouteListFiltered(netlink.FAMILY_V4, filter, mask)
		if err != nil {
			return err
		}
		names := map[int]string{}
		name := func(idx int) string {
			if idx == 0 {
				return ""
			}
			if s, ok := names[idx]; ok {
				return s
			}
			s := fmt.Sprintf("if%d", idx)
			if l, err := h.LinkByIndex(idx); err == nil {
				s = l.Attrs().Name
			}
			names[idx] = s
			return s
		}
		for _, r := range rs {
			k := KernelRoute{
				Dst:       prefixOf(r.Dst),
				Blackhole: r.Type == unix.RTN_BLACKHOLE,
				Dev:       name(r.LinkIndex),
				Protocol:  int(r.Protocol),
				Metric:    r.Priority,
			}
			if g, ok := netip.AddrFromSlice(r.Gw); ok {
				k.Via = append(k.Via, g.Unmap())
			}
			for _, nh := range r.MultiPath {
				if g, ok := netip.AddrFromSlice(nh.Gw); ok {
					k.Via = append(k.Via, g.Unmap())
				}
				if k.Dev == "" {
					k.Dev = name(nh.LinkIndex)
				}
			}
			slices.SortFunc(k.Via, func(a, b netip.Addr) int { return a.Compare(b) })
			out = append(out, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list routes in %s: %w", n.Name, err)
	}
	sort.Slice(out, func(i, j int) bool { return comparePrefix(out[i].Dst, out[j].Dst) < 0 })
	return out, nil
}

// CountRoutes counts the IPv4 main-table routes of protocol proto.
func (n *NetNS) CountRoutes(proto int) (int, error) {
	count := 0
	err := n.Netlink(func(h *netlink.Handle) error {
		rs, err := h.RouteListFiltered(netlink.FAMILY_V4,
			&netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: netlink.RouteProtocol(proto)},
			netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		count = len(rs)
		return err
	})
	return count, err
}

func prefixOf(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.MustParsePrefix("0.0.0.0/0")
	}
	a, _ := netip.AddrFromSlice(n.IP)
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// ExpectedRoute is a proto-98 route a node must hold.
type ExpectedRoute struct {
	Dst       netip.Prefix
	Blackhole bool
	// Dev, when set, is the required output interface (a pod's veth).
	Dev string
	// Via, when set, is the set of acceptable gateways (one of them, or
	// several for ECMP).
	Via []netip.Addr
	// Why says where the expectation comes from, for messages.
	Why string
}

// ExpectRoute adds a route node n must hold beyond blocks and pods (a
// default route from the ToR, say).
func (l *Lab) ExpectRoute(n *Node, r ExpectedRoute) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.extraRoutes == nil {
		l.extraRoutes = map[*Node][]ExpectedRoute{}
	}
	l.extraRoutes[n] = append(l.extraRoutes[n], r)
}

// RegisterExternalNode says that the blocks affine to Node resource name
// belong to a router that is not Tabby (a BIRD mesh member) at ip in rack,
// so the Tabby nodes must route them there.
func (l *Lab) RegisterExternalNode(name string, ip netip.Addr, rack int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.externalOwners == nil {
		l.externalOwners = map[string]externalOwner{}
	}
	l.externalOwners[name] = externalOwner{ip: ip, rack: rack}
}

// nextHops are the acceptable gateways on node n for a block of the node
// at ip in rack: the owner itself on the same L2 segment, and in the tor
// topology also (or, across racks, only) n's ToR.
func (l *Lab) nextHops(n *Node, ip netip.Addr, rack int) []netip.Addr {
	if l.Opts.Topology != TopologyToR {
		return []netip.Addr{ip}
	}
	if rack == n.Rack {
		return []netip.Addr{ip, ToRAddr(n.Rack)}
	}
	return []netip.Addr{ToRAddr(n.Rack)}
}

// ExpectedRoutes is every proto-98 route node n must hold, computed from
// the datastore: a blackhole for each of its confirmed blocks, "<pod ip>
// dev <veth>" for each of its workload endpoints, "<block> via <owner>"
// for the blocks of every other node that still has a Node resource, and
// whatever a test added.
func (l *Lab) ExpectedRoutes(ctx context.Context, n *Node) (map[netip.Prefix]ExpectedRoute, error) {
	want := map[netip.Prefix]ExpectedRoute{}
	add := func(r ExpectedRoute) error {
		if prev, dup := want[r.Dst]; dup {
			return fmt.Errorf("two expectations for %s on %s: %s and %s", r.Dst, n.Name, prev.Why, r.Why)
		}
		want[r.Dst] = r
		return nil
	}
	affs, err := l.Datastore.Store.List(ctx, "BlockAffinity", "")
	if err != nil {
		return nil, fmt.Errorf("list block affinities: %w", err)
	}
	// A node whose Node resource is gone has been removed from the
	// cluster: its blocks must be withdrawn everywhere, whatever IPAM
	// still says.
	nodes, err := l.Datastore.Store.List(ctx, "Node", "")
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	registered := map[string]bool{}
	for _, r := range nodes.Items {
		registered[r.GetName()] = true
	}
	for _, r := range affs.Items {
		a := r.(*v3.BlockAffinity)
		if a.Spec.State != v3.AffinityStateConfirmed || a.Spec.Deleted {
			continue
		}
		block, err := netip.ParsePrefix(a.Spec.CIDR)
		if err != nil || !block.Addr().Is4() {
			continue
		}
		why := "block of " + a.Spec.Node
		if a.Spec.Node != n.Name && !registered[a.Spec.Node] {
			continue
		}
		if a.Spec.Node == n.Name {
			err = add(ExpectedRoute{Dst: block, Blackhole: true, Why: why})
		} else if owner := l.Node(a.Spec.Node); owner != nil {
			err = add(ExpectedRoute{Dst: block, Via: l.nextHops(n, owner.IP, owner.Rack), Why: why})
		} else if ext, ok := l.externalOwner(a.Spec.Node); ok {
			err = add(ExpectedRoute{Dst: block, Via: l.nextHops(n, ext.ip, ext.rack), Why: why})
		} else {
			continue // a node the lab does not run: nothing to say
		}
		if err != nil {
			return nil, err
		}
	}
	weps, err := l.Datastore.Store.List(ctx, "WorkloadEndpoint", "")
	if err != nil {
		return nil, fmt.Errorf("list workload endpoints: %w", err)
	}
	for _, r := range weps.Items {
		w := r.(*v3.WorkloadEndpoint)
		if w.Spec.Node != n.Name {
			continue
		}
		for _, s := range w.Spec.IPNetworks {
			p, err := netip.ParsePrefix(s)
			if err != nil || !p.Addr().Is4() {
				continue
			}
			if err := add(ExpectedRoute{Dst: p, Dev: w.Spec.InterfaceName, Why: "pod " + w.Spec.Pod}); err != nil {
				return nil, err
			}
		}
	}
	l.mu.Lock()
	extra := append([]ExpectedRoute(nil), l.extraRoutes[n]...)
	l.mu.Unlock()
	for _, r := range extra {
		if err := add(r); err != nil {
			return nil, err
		}
	}
	return want, nil
}

func (l *Lab) externalOwner(name string) (externalOwner, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	o, ok := l.externalOwners[name]
	return o, ok
}

// CheckRoutes compares node n's proto-98 routes with ExpectedRoutes: same
// destinations, and each of the expected shape. The error lists every
// difference.
func (l *Lab) CheckRoutes(ctx context.Context, n *Node) error {
	want, err := l.ExpectedRoutes(ctx, n)
	if err != nil {
		return err
	}
	have, err := n.NS.Routes(RouteProtocol)
	if err != nil {
		return err
	}
	return diffRoutes(n.Name, want, have)
}

func diffRoutes(node string, want map[netip.Prefix]ExpectedRoute, have []KernelRoute) error {
	var problems []string
	seen := map[netip.Prefix]bool{}
	for _, k := range have {
		seen[k.Dst] = true
		w, ok := want[k.Dst]
		if !ok {
			problems = append(problems, "unexpected: "+k.String())
			continue
		}
		switch {
		case w.Blackhole != k.Blackhole:
			problems = append(problems, fmt.Sprintf("%s (%s): want blackhole=%v, have %s", w.Dst, w.Why, w.Blackhole, k))
		case w.Dev != "" && w.Dev != k.Dev:
			problems = append(problems, fmt.Sprintf("%s (%s): want dev %s, have %s", w.Dst, w.Why, w.Dev, k))
		case len(w.Via) > 0 && !viaOK(w.Via, k.Via):
			problems = append(problems, fmt.Sprintf("%s (%s): want via one of %v, have %s", w.Dst, w.Why, w.Via, k))
		}
	}
	for _, dst := range sortedPrefixes(want) {
		if !seen[dst] {
			w := want[dst]
			problems = append(problems, fmt.Sprintf("missing: %s (%s)", dst, w.Why))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s's kernel does not hold the expected proto %d routes:\n  %s", node, RouteProtocol, strings.Join(problems, "\n  "))
	}
	return nil
}

// viaOK accepts a route whose gateways are all acceptable (one, or
// several for ECMP).
func viaOK(allowed, have []netip.Addr) bool {
	if len(have) == 0 {
		return false
	}
	for _, g := range have {
		if !slices.Contains(allowed, g) {
			return false
		}
	}
	return true
}

func sortedPrefixes[V any](m map[netip.Prefix]V) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return comparePrefix(out[i], out[j]) < 0 })
	return out
}

// WaitRoutes waits until CheckRoutes passes on every node; the error is
// the last difference seen on each node that never converged.
func (l *Lab) WaitRoutes(ctx context.Context, limit time.Duration) error {
	var errs []error
	deadline := time.Now().Add(limit)
	for _, n := range l.Nodes {
		left := time.Until(deadline)
		if left <= 0 {
			left = pollInterval
		}
		if err := waitFor(ctx, left, func() error { return l.CheckRoutes(ctx, n) }); err != nil {
			errs = append(errs, err)
			if s := bgpCounts(ctx, n); s != "" {
				errs = append(errs, errors.New(s))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("routes did not converge: %w", joinLines(errs))
	}
	return nil
}

func joinLines(errs []error) error {
	var b strings.Builder
	for i, e := range errs {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(e.Error())
	}
	return fmt.Errorf("%s", b.String())
}

// bgpCounts describes n's BGP sessions with their route counts, for a
// node whose kernel lacks a route: fewer routes accepted than received
// means the speaker dropped some (an import filter, or an AS loop), which
// no log line says.
func bgpCounts(ctx context.Context, n *Node) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	st, err := n.Status(ctx)
	if err != nil {
		return ""
	}
	var parts []string
	for _, p := range st.GetPeers() {
		parts = append(parts, fmt.Sprintf("%s %s, %d received, %d accepted", p.GetAddress(), p.GetState(), p.GetRoutesReceived(), p.GetRoutesAccepted()))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("  %s's BGP peers: %s", n.Name, strings.Join(parts, "; "))
}
