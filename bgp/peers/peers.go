package peers

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"

	"github.com/tabbynet/tabby/api/selector"
	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/bgp"
)

// Input is everything the peer set depends on.
type Input struct {
	// NodeName is this node.
	NodeName string
	// Nodes is every Node, this one included.
	Nodes   []*v3.Node
	Peers   []*v3.BGPPeer
	Configs []*v3.BGPConfiguration
	// RouterID overrides the router ID (CALICO_ROUTER_ID); when invalid the
	// node's IPv4 address is used.
	RouterID netip.Addr
	// Password resolves a BGPPassword (inline value, file, secret). Nil
	// accepts inline values only.
	Password func(*v3.BGPPassword) (string, error)
}

// Result is the node's desired BGP setup.
type Result struct {
	// Global has RouterID, ASN and ListenPort filled in.
	Global bgp.GlobalConfig
	// NodeIPv4 and NodeIPv6 are this node's BGP addresses (invalid when
	// absent): the next hops of its advertisements.
	NodeIPv4, NodeIPv6 netip.Addr
	// ClusterID is this node's route reflector cluster ID ("" when it is
	// not a route reflector).
	ClusterID   string
	MeshEnabled bool
	// Peers is sorted by address, one entry per address.
	Peers []bgp.PeerConfig
	// Problems lists resources (or parts of them) that were ignored, and why.
	Problems []string
}

// ErrUnknownNode is returned when Input.NodeName is not among Input.Nodes.
var ErrUnknownNode = errors.New("this node has no Node resource")

// Precedence of the ways a peering can be asked for, for the same address:
// Calico lets a global BGPPeer beat a node-specific one, and an explicit
// forward peering beat an implicit reverse one. The mesh comes last: an
// explicit BGPPeer to another node says more (password, timers) than the
// mesh does.
const (
	prioMesh = iota
	prioReverse
	prioNode
	prioGlobal
)

type nodeInfo struct {
	name      string
	labels    map[string]string
	v4, v6    netip.Addr
	asn       uint32
	port      uint16
	clusterID string
}

func (n *nodeInfo) addr(v6 bool) netip.Addr {
	if v6 {
		return n.v6
	}
	return n.v4
}

type calc struct {
	in       Input
	me       *nodeInfo
	nodes    []*nodeInfo // sorted by name, this node included
	byAddr   map[netip.Addr]*nodeInfo
	globalAS uint32
	problems []string
	out      map[netip.Addr]entry
}

type entry struct {
	prio int
	cfg  bgp.PeerConfig
}

// Compute returns the desired BGP setup of in.NodeName.
func Compute(in Input) (Result, error) {
	c := &calc{in: in, out: map[netip.Addr]entry{}, byAddr: map[netip.Addr]*nodeInfo{}}
	def, ports := c.configs()

	c.globalAS = uint32(v3.DefaultASNumber)
	if def != nil && def.Spec.ASNumber != nil && *def.Spec.ASNumber != 0 {
		c.globalAS = uint32(*def.Spec.ASNumber)
	}
	globalPort := uint16(v3.DefaultBGPListenPort)
	if def != nil && def.Spec.ListenPort != 0 {
		globalPort = def.Spec.ListenPort
	}
	for _, n := range in.Nodes {
		ni := c.nodeInfo(n, globalPort, ports)
		c.nodes = append(c.nodes, ni)
		if ni.name == in.NodeName {
			c.me = ni
		}
	}
	sort.Slice(c.nodes, func(i, j int) bool { return c.nodes[i].name < c.nodes[j].name })
	for _, ni := range c.nodes {
		for _, a := range []netip.Addr{ni.v4, ni.v6} {
			if a.IsValid() {
				if _, dup := c.byAddr[a]; !dup {
					c.byAddr[a] = ni
				}
			}
		}
	}
	if c.me == nil {
		return Result{}, fmt.Errorf("compute BGP peers of node %q: %w", in.NodeName, ErrUnknownNode)
	}
	routerID := in.RouterID
	if !routerID.IsValid() {
		routerID = c.me.v4
	}
	if !routerID.IsValid() || !routerID.Is4() {
		return Result{}, fmt.Errorf("compute BGP peers of node %q: no IPv4 router ID: the node has no IPv4 BGP address (set CALICO_ROUTER_ID)", in.NodeName)
	}

	mesh := def == nil || def.Spec.NodeToNodeMeshEnabled == nil || *def.Spec.NodeToNodeMeshEnabled
	if mesh && c.me.clusterID == "" {
		c.mesh(def)
	}
	peers := append([]*v3.BGPPeer(nil), in.Peers...)
	sort.Slice(peers, func(i, j int) bool { return peers[i].Name < peers[j].Name })
	for _, p := range peers {
		c.forward(p)
		c.reverse(p)
	}

	res := Result{
		Global: bgp.GlobalConfig{
			RouterID:   routerID,
			ASN:        c.me.asn,
			ListenPort: int(c.me.port),
		},
		NodeIPv4:    c.me.v4,
		NodeIPv6:    c.me.v6,
		ClusterID:   c.me.clusterID,
		MeshEnabled: mesh,
		Problems:    c.problems,
	}
	for _, e := range c.out {
		res.Peers = append(res.Peers, e.cfg)
	}
	sort.Slice(res.Peers, func(i, j int) bool { return res.Peers[i].Address.Less(res.Peers[j].Address) })
	return res, nil
}

// configs returns the default BGPConfiguration and the per-node listen ports.
func (c *calc) configs() (*v3.BGPConfiguration, map[string]uint16) {
	var def *v3.BGPConfiguration
	ports := map[string]uint16{}
	for _, cfg := range c.in.Configs {
		switch {
		case cfg.Name == v3.DefaultConfigName:
			def = cfg
		case strings.HasPrefix(cfg.Name, v3.NodeConfigPrefix):
			if cfg.Spec.ListenPort != 0 {
				ports[strings.TrimPrefix(cfg.Name, v3.NodeConfigPrefix)] = cfg.Spec.ListenPort
			}
		}
	}
	return def, ports
}

func (c *calc) nodeInfo(n *v3.Node, globalPort uint16, ports map[string]uint16) *nodeInfo {
	ni := &nodeInfo{name: n.Name, labels: n.Labels, asn: c.globalAS, port: globalPort}
	if p, ok := ports[n.Name]; ok {
		ni.port = p
	}
	if b := n.Spec.BGP; b != nil {
		ni.v4 = c.nodeAddr(n.Name, "ipv4Address", b.IPv4Address, true)
		ni.v6 = c.nodeAddr(n.Name, "ipv6Address", b.IPv6Address, false)
		if b.ASNumber != nil && *b.ASNumber != 0 {
			ni.asn = uint32(*b.ASNumber)
		}
		ni.clusterID = b.RouteReflectorClusterID
	}
	return ni
}

// nodeAddr parses Node spec.bgp.ipv4Address/ipv6Address, which Calico
// stores with the subnet ("10.0.0.5/24") but also accepts bare.
func (c *calc) nodeAddr(node, field, s string, want4 bool) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	var a netip.Addr
	if p, err := netip.ParsePrefix(s); err == nil {
		a = p.Addr()
	} else if x, err := netip.ParseAddr(s); err == nil {
		a = x
	} else {
		c.problem("Node %q: spec.bgp.%s %q is not an address; ignored", node, field, s)
		return netip.Addr{}
	}
	if a.Is4() != want4 || a.Zone() != "" {
		c.problem("Node %q: spec.bgp.%s %q is of the wrong IP family; ignored", node, field, s)
		return netip.Addr{}
	}
	return a.Unmap()
}

func (c *calc) problem(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// emit records a peering unless one of at least the same precedence is
// already there for that address.
func (c *calc) emit(prio int, p bgp.PeerConfig) {
	if p.Address == c.me.v4 || p.Address == c.me.v6 {
		return
	}
	if old, ok := c.out[p.Address]; ok && old.prio >= prio {
		return
	}
	c.out[p.Address] = entry{prio: prio, cfg: p}
}

// passive applies Calico's race-avoidance rule to a session between two
// Calico nodes: the side with the greater address (compared as strings,
// exactly as confd does, so mixed Calico/Tabby clusters agree) waits.
func passive(peer, me netip.Addr) bool {
	return me.IsValid() && peer.String() > me.String()
}

func (c *calc) mesh(def *v3.BGPConfiguration) {
	var password *v3.BGPPassword
	var restart bgp.PeerConfig
	if def != nil {
		password = def.Spec.NodeMeshPassword
		if d := def.Spec.NodeMeshMaxRestartTime; d != nil {
			restart.RestartTime = d.Duration
		}
	}
	for _, n := range c.nodes {
		if n == c.me || n.clusterID != "" {
			continue
		}
		for _, v6 := range []bool{false, true} {
			peerIP, myIP := n.addr(v6), c.me.addr(v6)
			if !peerIP.IsValid() || !myIP.IsValid() {
				continue
			}
			p := bgp.PeerConfig{
				Address:         peerIP,
				Port:            n.port,
				ASN:             n.asn,
				Type:            bgp.PeerTypeMesh,
				ClusterInternal: true,
				LocalAddress:    myIP,
				Passive:         passive(peerIP, myIP),
				RestartTime:     restart.RestartTime,
				Source:          "node-to-node mesh",
			}
			c.setPassword(&p, password, "BGPConfiguration default nodeMeshPassword")
			c.emit(prioMesh, p)
		}
	}
}

func (c *calc) setPassword(p *bgp.PeerConfig, pw *v3.BGPPassword, what string) {
	if pw == nil {
		return
	}
	if c.in.Password == nil {
		if pw.Value != "" && pw.File == "" && pw.SecretKeyRef == nil {
			p.Password = pw.Value
			return
		}
		p.ConfigError = fmt.Sprintf("%s: no password source available", what)
		return
	}
	s, err := c.in.Password(pw)
	if err != nil {
		p.ConfigError = fmt.Sprintf("%s: %v", what, err)
		return
	}
	p.Password = s
}

// selects reports whether sel (already known to parse) matches n.
func selects(sel selector.Selector, n *nodeInfo) bool {
	return sel.Evaluate(n.labels)
}

func (c *calc) parseSelector(p *v3.BGPPeer, field, s string) (selector.Selector, bool) {
	sel, err := selector.Parse(s)
	if err != nil {
		c.problem("BGPPeer %q: spec.%s: %v; peer ignored", p.Name, field, err)
		return nil, false
	}
	return sel, true
}

// localNodes returns the nodes on the local side of p (node, nodeSelector,
// or every node for a global peer), and whether p is global.
func (c *calc) localNodes(p *v3.BGPPeer) (nodes []*nodeInfo, global, ok bool) {
	switch {
	case p.Spec.NodeSelector != "":
		sel, ok := c.parseSelector(p, "nodeSelector", p.Spec.NodeSelector)
		if !ok {
			return nil, false, false
		}
		for _, n := range c.nodes {
			if selects(sel, n) {
				nodes = append(nodes, n)
			}
		}
		return nodes, false, true
	case p.Spec.Node != "":
		for _, n := range c.nodes {
			if n.name == p.Spec.Node {
				return []*nodeInfo{n}, false, true
			}
		}
		return nil, false, true
	default:
		return c.nodes, true, true
	}
}

func containsNode(list []*nodeInfo, n *nodeInfo) bool {
	for _, x := range list {
		if x == n {
			return true
		}
	}
	return false
}

// forward adds the peerings p asks this node to open.
func (c *calc) forward(p *v3.BGPPeer) {
	if p.Spec.LocalWorkloadSelector != "" {
		return // workload peering is not supported: nothing to open
	}
	locals, global, ok := c.localNodes(p)
	if !ok || !containsNode(locals, c.me) {
		return
	}
	prio, typ := prioNode, bgp.PeerTypeNode
	if global {
		prio, typ = prioGlobal, bgp.PeerTypeGlobal
	}
	if p.Spec.PeerSelector != "" {
		sel, ok := c.parseSelector(p, "peerSelector", p.Spec.PeerSelector)
		if !ok {
			return
		}
		for _, n := range c.nodes {
			if n == c.me || !selects(sel, n) {
				continue
			}
			c.nodePeers(p, prio, typ, n, true, true)
		}
		return
	}
	addr, port, err := v3.ParsePeerIP(p.Spec.PeerIP)
	if err != nil {
		c.problem("BGPPeer %q: spec.peerIP: %v; peer ignored", p.Name, err)
		return
	}
	addr = addr.Unmap()
	myIP := c.me.addr(addr.Is6())
	if !myIP.IsValid() {
		c.problem("BGPPeer %q: peer %s is IPv%d but node %q has no such address; peer ignored", p.Name, addr, family(addr), c.me.name)
		return
	}
	asn := uint32(p.Spec.ASNumber)
	if asn == 0 {
		asn = c.me.asn
	}
	cfg := bgp.PeerConfig{Address: addr, Port: port, ASN: asn, Type: typ}
	peerClusterID := ""
	if n, isNode := c.byAddr[addr]; isNode {
		// The peer is a Calico node: it gets the node treatment (passive
		// rule, pool-only import) and, when no port was given, the port that
		// node listens on.
		cfg.ClusterInternal = true
		peerClusterID = n.clusterID
		if port == 0 && n.asn == asn {
			cfg.Port = n.port
		}
	}
	c.finish(p, prio, &cfg, myIP, peerClusterID)
}

// nodePeers adds peerings to node n's addresses (for the families asked and
// that both ends have), with n's AS and port.
func (c *calc) nodePeers(p *v3.BGPPeer, prio int, typ bgp.PeerType, n *nodeInfo, v4, v6 bool) {
	for _, fam6 := range []bool{false, true} {
		if (fam6 && !v6) || (!fam6 && !v4) {
			continue
		}
		peerIP, myIP := n.addr(fam6), c.me.addr(fam6)
		if !peerIP.IsValid() || !myIP.IsValid() {
			continue
		}
		cfg := bgp.PeerConfig{Address: peerIP, Port: n.port, ASN: n.asn, Type: typ, ClusterInternal: true}
		c.finish(p, prio, &cfg, myIP, n.clusterID)
	}
}

// finish applies the BGPPeer's session settings and the derived ones
// (source address, passive side, route reflection), then emits.
func (c *calc) finish(p *v3.BGPPeer, prio int, cfg *bgp.PeerConfig, myIP netip.Addr, peerClusterID string) {
	s := &p.Spec
	cfg.Source = "BGPPeer " + p.Name
	if s.LocalASNumber != nil {
		cfg.LocalASN = uint32(*s.LocalASNumber)
	}
	if s.SourceAddress != v3.SourceAddressNone {
		cfg.LocalAddress = myIP
	}
	if s.KeepaliveTime != nil {
		cfg.KeepaliveTime = s.KeepaliveTime.Duration
	}
	if s.MaxRestartTime != nil {
		cfg.RestartTime = s.MaxRestartTime.Duration
	}
	if s.TTLSecurity != nil {
		cfg.TTLSecurity = *s.TTLSecurity
	}
	if n := s.NumAllowedLocalASNumbers; n != nil && *n > 0 {
		cfg.AllowOwnAS = uint8(min(*n, math.MaxUint8))
	}
	c.setPassword(cfg, s.Password, "BGPPeer "+p.Name+" password")
	if cfg.ClusterInternal {
		cfg.Passive = passive(cfg.Address, myIP)
	}
	localAS := c.me.asn
	if cfg.LocalASN != 0 {
		localAS = cfg.LocalASN
	}
	// Calico: a route reflector treats an iBGP peer as its client unless the
	// peer is a reflector of the same cluster.
	if c.me.clusterID != "" && cfg.ASN == localAS && peerClusterID != c.me.clusterID {
		cfg.RouteReflectorClient = true
		cfg.RouteReflectorClusterID = c.me.clusterID
		cfg.Type = bgp.PeerTypeRRClient
	}
	c.emit(prio, *cfg)
}

// reverse adds the peerings other nodes open towards this one because of
// p, so that sessions between Calico nodes are symmetric without a second
// BGPPeer (Calico's automatic reverse peering; off with reversePeering:
// Manual).
func (c *calc) reverse(p *v3.BGPPeer) {
	s := &p.Spec
	if s.ReversePeering != nil && *s.ReversePeering == v3.ReversePeeringManual {
		return
	}
	if s.LocalWorkloadSelector != "" {
		return
	}
	var v4, v6 bool
	if s.PeerSelector != "" {
		sel, err := selector.Parse(s.PeerSelector)
		if err != nil || !selects(sel, c.me) {
			return // a bad selector was reported by forward
		}
		v4, v6 = true, true
	} else {
		addr, port, err := v3.ParsePeerIP(s.PeerIP)
		if err != nil {
			return
		}
		addr = addr.Unmap()
		if addr != c.me.v4 && addr != c.me.v6 {
			return
		}
		asn := uint32(s.ASNumber)
		if asn != 0 && asn != c.me.asn {
			return
		}
		if port != 0 && port != c.me.port {
			return
		}
		v4, v6 = addr.Is4(), addr.Is6()
	}
	locals, _, ok := c.localNodes(p)
	if !ok {
		return
	}
	for _, n := range locals {
		if n == c.me {
			continue
		}
		c.nodePeers(p, prioReverse, bgp.PeerTypeNode, n, v4, v6)
	}
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}
