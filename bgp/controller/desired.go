package controller

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/bgp"
	"github.com/tabbynet/tabby/bgp/peers"
)

// Input is everything the node's BGP setup depends on.
type Input struct {
	NodeName   string
	Nodes      []*v3.Node
	Peers      []*v3.BGPPeer
	Configs    []*v3.BGPConfiguration
	Pools      []*v3.IPPool
	Affinities []*v3.BlockAffinity
	// Workloads only matter on this node: their addresses outside this
	// node's blocks are borrowed and advertised as host routes.
	Workloads []*v3.WorkloadEndpoint
	RouterID  netip.Addr
	Password  func(*v3.BGPPassword) (string, error)
}

// Desired is the node's whole BGP setup.
type Desired struct {
	peers.Result
	Policy         bgp.Policy
	Advertisements []bgp.Advertisement
}

// Compute returns the desired setup. It is pure.
func Compute(in Input) (Desired, error) {
	res, err := peers.Compute(peers.Input{
		NodeName: in.NodeName, Nodes: in.Nodes, Peers: in.Peers, Configs: in.Configs,
		RouterID: in.RouterID, Password: in.Password,
	})
	if err != nil {
		return Desired{}, err
	}
	d := Desired{Result: res}

	type pool struct {
		cidr   netip.Prefix
		export bool
	}
	var pools []pool
	for _, p := range in.Pools {
		cidr, err := netip.ParsePrefix(p.Spec.CIDR)
		if err != nil {
			d.Problems = append(d.Problems, fmt.Sprintf("IPPool %q: cidr %q: %v; ignored", p.Name, p.Spec.CIDR, err))
			continue
		}
		cidr = cidr.Masked()
		pools = append(pools, pool{cidr: cidr, export: !p.Spec.Disabled && !p.Spec.DisableBGPExport})
		// Import accepts routes into every pool, disabled ones included:
		// their existing pods still need reaching.
		d.Policy.Pools = append(d.Policy.Pools, cidr)
	}
	exportable := func(p netip.Prefix) bool {
		for _, pl := range pools {
			if pl.cidr.Contains(p.Addr()) && pl.cidr.Bits() <= p.Bits() {
				return pl.export
			}
		}
		return false // outside every pool: never leaves the node
	}
	nextHop := func(p netip.Prefix) netip.Addr {
		if p.Addr().Is4() {
			return res.NodeIPv4
		}
		return res.NodeIPv6
	}
	seen := map[netip.Prefix]bool{}
	advertise := func(p netip.Prefix) {
		nh := nextHop(p)
		if seen[p] || !nh.IsValid() || !exportable(p) {
			return
		}
		seen[p] = true
		d.Advertisements = append(d.Advertisements, bgp.Advertisement{Prefix: p, NextHop: nh})
	}

	// This node's blocks: the aggregate is advertised, never the host
	// routes of the pods inside it.
	var blocks []netip.Prefix
	for _, a := range in.Affinities {
		if !ownsBlock(in.NodeName, a) {
			continue
		}
		b, err := netip.ParsePrefix(a.Spec.CIDR)
		if err != nil {
			d.Problems = append(d.Problems, fmt.Sprintf("BlockAffinity %q: cidr %q: %v; ignored", a.Name, a.Spec.CIDR, err))
			continue
		}
		b = b.Masked()
		if !slices.Contains(blocks, b) {
			blocks = append(blocks, b)
		}
	}
	slices.SortFunc(blocks, comparePrefix)
	d.Policy.OwnBlocks = blocks
	for _, b := range blocks {
		advertise(b)
	}

	// Borrowed addresses: a pod here whose address lies outside this
	// node's blocks is reachable only through a host route from us.
	inOwnBlock := func(a netip.Addr) bool {
		for _, b := range blocks {
			if b.Contains(a) {
				return true
			}
		}
		return false
	}
	for _, w := range in.Workloads {
		if w == nil || w.Spec.Node != in.NodeName {
			continue
		}
		for _, n := range w.Spec.IPNetworks {
			p, err := hostPrefix(n)
			if err != nil {
				d.Problems = append(d.Problems, fmt.Sprintf("%s: ipNetworks entry %q: %v; not advertised", v3.Describe(w), n, err))
				continue
			}
			if !inOwnBlock(p.Addr()) {
				advertise(p)
			}
		}
	}
	slices.SortFunc(d.Advertisements, func(a, b bgp.Advertisement) int { return comparePrefix(a.Prefix, b.Prefix) })
	slices.SortFunc(d.Policy.Pools, comparePrefix)
	return d, nil
}

// ownsBlock: a confirmed, live host affinity of node (a pending claim may
// still lose its race; Calico does not advertise it either).
func ownsBlock(node string, a *v3.BlockAffinity) bool {
	return a != nil && a.Spec.Node == node && a.Spec.State == v3.AffinityStateConfirmed &&
		!a.Spec.Deleted && (a.Spec.Type == "" || a.Spec.Type == "host")
}

// hostPrefix parses a WorkloadEndpoint ipNetworks entry ("10.0.0.5/32" or a
// bare address) as a host prefix.
func hostPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if !p.IsSingleIP() {
			return netip.Prefix{}, fmt.Errorf("not a host address")
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
