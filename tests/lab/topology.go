package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Limits of Up's waits. They bound a broken lab, they are not performance
// targets: a healthy 3-node lab converges in seconds.
const (
	startLimit    = 2 * time.Minute
	sessionsLimit = 2 * time.Minute
	routesLimit   = 2 * time.Minute
)

// Up builds a whole topology: New, then Deploy. On error everything is
// torn down.
func Up(ctx context.Context, opts Options) (*Lab, error) {
	l, err := New(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := l.Deploy(ctx); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

// Deploy runs Tabby on a lab made by New: the nodes, the BGP
// configuration (TopologyYAML plus Options.ExtraYAML, applied with
// calicoctl before any agent starts, so no session of the wrong kind ever
// forms), Options.BeforeStart, the ToR's FRR, one calico-node per node,
// every expected session Established, the pods (CNI ADD through libcni),
// and every node's kernel holding exactly the expected routes. It does not
// tear down on error: the caller owns the lab.
func (l *Lab) Deploy(ctx context.Context) error {
	o := l.Opts
	for i := range o.Nodes {
		spec := NodeSpec{Rack: i % o.Racks}
		if o.Topology == TopologyToR {
			spec.AS = ToRRackAS(spec.Rack)
		}
		n, err := l.AddNode(ctx, spec)
		if err != nil {
			return err
		}
		if o.Topology == TopologyToR && !o.NoToRDefaultRoute {
			l.ExpectRoute(n, ExpectedRoute{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: []netip.Addr{ToRAddr(n.Rack)}, Why: "default route from the ToR"})
		}
	}
	l.log.Info("applying the BGP configuration with calicoctl", "topology", o.Topology)
	if err := l.Apply(ctx, l.TopologyYAML()); err != nil {
		return err
	}
	// A second apply: calicoctl refuses one resource twice in one input,
	// and ExtraYAML may replace one of the topology's.
	if o.ExtraYAML != "" {
		if err := l.Apply(ctx, o.ExtraYAML); err != nil {
			return err
		}
	}
	if o.BeforeStart != nil {
		if err := o.BeforeStart(ctx, l); err != nil {
			return fmt.Errorf("before starting the nodes: %w", err)
		}
	}
	if l.ToR != nil {
		l.log.Info("starting FRR on the top-of-rack router")
		if err := l.ToR.Start(ctx, l.ToRConfig()); err != nil {
			return err
		}
	}
	l.log.Info("starting calico-node", "nodes", len(l.Nodes))
	if err := l.StartNodes(ctx, l.Nodes...); err != nil {
		return err
	}
	l.log.Info("waiting for BGP sessions")
	if err := l.WaitSessions(ctx, sessionsLimit); err != nil {
		return err
	}
	l.log.Info("adding pods through the calico CNI plugin", "perNode", o.PodsPerNode)
	if err := l.AddPods(ctx, o.PodsPerNode); err != nil {
		return err
	}
	l.log.Info("waiting for every kernel to hold the expected routes")
	if err := l.WaitRoutes(ctx, routesLimit); err != nil {
		return err
	}
	// Readiness last: nothing above needs it (the agent re-evaluates it
	// as sessions change, so by now it normally holds).
	l.log.Info("waiting for every calico-node to report ready")
	for _, n := range l.Nodes {
		if err := n.WaitReady(ctx, startLimit); err != nil {
			return err
		}
	}
	return nil
}

// StartNodes starts calico-node on the given nodes concurrently.
func (l *Lab) StartNodes(ctx context.Context, nodes ...*Node) error {
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.Start(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// AddPods adds perNode pods to every node ("<node>-pod<k>"), nodes in
// parallel (pods of one node in turn, as the agent serializes IPAM per
// node anyway).
func (l *Lab) AddPods(ctx context.Context, perNode int) error {
	var wg sync.WaitGroup
	errs := make([]error, len(l.Nodes))
	for i, n := range l.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 1; k <= perNode; k++ {
				if _, err := l.AddPod(ctx, n, fmt.Sprintf("%s-pod%d", n.Name, k)); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	// Keep the pod list in node order whatever the goroutines' order.
	l.mu.Lock()
	byNode := map[*Node][]*Pod{}
	for _, p := range l.Pods {
		byNode[p.Node] = append(byNode[p.Node], p)
	}
	l.Pods = l.Pods[:0]
	for _, n := range l.Nodes {
		l.Pods = append(l.Pods, byNode[n]...)
	}
	l.mu.Unlock()
	return errors.Join(errs...)
}

// RouteReflectors are the nodes that reflect in the rr topology.
func (l *Lab) RouteReflectors() []*Node {
	if l.Opts.Topology != TopologyRR {
		return nil
	}
	return l.Nodes[:l.Opts.RouteReflectors]
}

func (l *Lab) isRR(n *Node) bool {
	for _, r := range l.RouteReflectors() {
		if r == n {
			return true
		}
	}
	return false
}

// TopologyYAML is the Calico configuration of the topology, as an operator
// would apply it with calicoctl: the Node resources (labels, route
// reflector cluster IDs), BGPConfiguration "default" and the BGPPeers.
func (l *Lab) TopologyYAML() string {
	var b strings.Builder
	doc := func(format string, args ...any) {
		if b.Len() > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, format, args...)
	}
	for _, n := range l.Nodes {
		labels := fmt.Sprintf("    rack: rack%d\n", n.Rack)
		bgp := fmt.Sprintf("    ipv4Address: %s/24\n", n.IP)
		if n.AS != 0 {
			bgp += fmt.Sprintf("    asNumber: %d\n", n.AS)
		}
		if l.isRR(n) {
			labels += "    route-reflector: \"true\"\n"
			bgp += fmt.Sprintf("    routeReflectorClusterID: %s\n", RRClusterID)
		}
		doc("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: %s\n  labels:\n%sspec:\n  bgp:\n%s", n.Name, labels, bgp)
	}
	switch l.Opts.Topology {
	case TopologyMesh:
		doc("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  nodeToNodeMeshEnabled: true\n  asNumber: %d\n", DefaultASNumber)
	case TopologyRR:
		doc("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  nodeToNodeMeshEnabled: false\n  asNumber: %d\n", DefaultASNumber)
		doc("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: peer-with-route-reflectors\nspec:\n  nodeSelector: all()\n  peerSelector: route-reflector == 'true'\n")
	case TopologyCustom:
		doc("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  nodeToNodeMeshEnabled: false\n  asNumber: %d\n", DefaultASNumber)
	case TopologyToR:
		doc("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  nodeToNodeMeshEnabled: false\n  asNumber: %d\n", DefaultASNumber)
		for r := range l.Opts.Racks {
			pw := ""
			if l.Opts.ToRPassword != "" {
				pw = fmt.Sprintf("  password:\n    value: %s\n", l.Opts.ToRPassword)
			}
			doc("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: rack%d-tor\nspec:\n  nodeSelector: rack == 'rack%d'\n  peerIP: %s\n  asNumber: %d\n%s",
				r, r, ToRAddr(r), ToRAS, pw)
		}
	}
	return b.String()
}

// ToRConfig is the ToR's FRR configuration: in the tor topology one eBGP
// neighbor per node (its rack's AS, the MD5 password, as-override so rack
// mates accept each other's routes, and a default route unless switched
// off); in the others none (it only forwards).
func (l *Lab) ToRConfig() FRRConfig {
	cfg := FRRConfig{Hostname: "tor", RouterID: ToRLoopback, AS: ToRAS}
	if l.Opts.Topology != TopologyToR {
		return cfg
	}
	for _, n := range l.Nodes {
		cfg.Neighbors = append(cfg.Neighbors, RackNeighbor(n.IP, n.AS, l.Opts.ToRPassword, !l.Opts.NoToRDefaultRoute))
	}
	return cfg
}

// RackNeighbor is how the ToR peers with a member of a rack in the tor
// topology: eBGP with the rack's AS, as-override so that rack mates, which
// share one AS, accept each other's routes, the MD5 key (empty: none) and
// optionally a default route.
func RackNeighbor(addr netip.Addr, rackAS uint32, password string, defaultRoute bool) FRRNeighbor {
	return FRRNeighbor{Addr: addr, AS: rackAS, Password: password, ASOverride: true, DefaultOriginate: defaultRoute}
}

// ExpectedPeers are the sessions node n must have in the lab's topology
// (plus any a test added with ExpectPeer).
func (l *Lab) ExpectedPeers(n *Node) []netip.Addr {
	var out []netip.Addr
	switch l.Opts.Topology {
	case TopologyMesh:
		for _, m := range l.Nodes {
			if m != n {
				out = append(out, m.IP)
			}
		}
	case TopologyRR:
		for _, m := range l.Nodes {
			if m != n && (l.isRR(n) || l.isRR(m)) {
				out = append(out, m.IP)
			}
		}
	case TopologyToR:
		out = append(out, ToRAddr(n.Rack))
	}
	l.mu.Lock()
	out = append(out, l.extraPeers[n]...)
	l.mu.Unlock()
	return out
}

// ExpectPeer adds a session node n must have beyond the topology's.
func (l *Lab) ExpectPeer(n *Node, addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.extraPeers == nil {
		l.extraPeers = map[*Node][]netip.Addr{}
	}
	l.extraPeers[n] = append(l.extraPeers[n], addr)
}

// WaitSessions waits until every node reports every expected session
// Established.
func (l *Lab) WaitSessions(ctx context.Context, limit time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, len(l.Nodes))
	for i, n := range l.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.WaitEstablished(ctx, limit, l.ExpectedPeers(n)...)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
