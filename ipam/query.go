package ipam

import (
	"context"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

// IPsByHandle lists the addresses a handle holds (none when the handle does
// not exist).
func (m *IPAM) IPsByHandle(ctx context.Context, handleID string) ([]netip.Addr, error) {
	ps, err := m.handlePrefixes(ctx, handleID)
	out := make([]netip.Addr, len(ps))
	for i, p := range ps {
		out[i] = p.Addr()
	}
	return out, err
}

// handlePrefixes is IPsByHandle with each address at its block's prefix
// length, as AutoAssign returns them.
func (m *IPAM) handlePrefixes(ctx context.Context, handleID string) ([]netip.Prefix, error) {
	h, err := getAs[*v3.IPAMHandle](ctx, m.ds, handleKey(handleName(handleID)))
	if datastore.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("addresses of handle %q: %w", handleID, err)
	}
	var out []netip.Prefix
	for _, key := range slices.Sorted(maps.Keys(h.Spec.Block)) {
		p, err := netip.ParsePrefix(key)
		if err != nil {
			continue
		}
		b, err := m.getBlock(ctx, blockName(p))
		if datastore.IsNotFound(err) {
			continue // over-counting handle: nothing there
		}
		if err != nil {
			return nil, fmt.Errorf("addresses of handle %q: %w", handleID, err)
		}
		for o := range b.rec.Spec.Allocations {
			if b.rec.Spec.Allocations[o] != nil && b.handleOf(o) == handleID {
				out = append(out, b.prefixOf(o))
			}
		}
	}
	return out, nil
}

// Allocation describes one allocated address.
type Allocation struct {
	Addr     netip.Addr
	Block    netip.Prefix
	HandleID string
	Attrs    map[string]string
	// SequenceNumber identifies this allocation of the address; pass it in
	// ReleaseOptions to release exactly this allocation.
	SequenceNumber uint64
	// BlockNode is the node the block is affine to ("" for none).
	BlockNode string
	// Borrowed: the address was assigned to a node (attribute "node") that
	// is not the block's.
	Borrowed bool
}

func allocationAt(b *blockState, ord int) *Allocation {
	at, _ := b.attr(ord)
	a := &Allocation{
		Addr:           b.addrOf(ord),
		Block:          b.prefix,
		HandleID:       b.handleOf(ord),
		Attrs:          maps.Clone(at.Secondary),
		SequenceNumber: b.seqOf(ord),
		BlockNode:      b.owner(),
	}
	if n := a.Attrs[AttributeNode]; n != "" && n != a.BlockNode {
		a.Borrowed = true
	}
	return a
}

// AllocationInfo describes the allocation of ip, or fails with
// ErrNotAllocated.
func (m *IPAM) AllocationInfo(ctx context.Context, ip netip.Addr) (*Allocation, error) {
	ip = ip.Unmap()
	pools, err := m.loadPools(ctx)
	if err != nil {
		return nil, err
	}
	var b *blockState
	if p, ok := poolFor(pools, ip); ok {
		b, err = m.getBlock(ctx, blockName(p.blockFor(ip)))
		if err != nil && !datastore.IsNotFound(err) {
			return nil, fmt.Errorf("allocation of %s: %w", ip, err)
		}
	}
	if b == nil {
		blocks, err := m.listBlocks(ctx)
		if err != nil {
			return nil, fmt.Errorf("allocation of %s: %w", ip, err)
		}
		for _, c := range blocks {
			if c.prefix.Contains(ip) {
				b = c
				break
			}
		}
	}
	if b == nil {
		return nil, fmt.Errorf("%s: %w", ip, ErrNotAllocated)
	}
	ord, ok := b.ordinalOf(ip)
	if !ok || b.rec.Spec.Allocations[ord] == nil {
		return nil, fmt.Errorf("%s: %w", ip, ErrNotAllocated)
	}
	return allocationAt(b, ord), nil
}

// BlocksForNode lists the blocks node owns: a confirmed affinity and a block
// that names the node. Pending claims and blocks being given up are not
// included, so routes are only ever announced for settled ownership.
func (m *IPAM) BlocksForNode(ctx context.Context, node string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, ver := range []int{4, 6} {
		affs, err := m.nodeAffinities(ctx, node, ver, nil)
		if err != nil {
			return nil, fmt.Errorf("blocks of node %q: %w", node, err)
		}
		for _, a := range affs {
			if a.Spec.State != v3.AffinityStateConfirmed && a.Spec.State != "" {
				continue
			}
			p, _ := affinityPrefix(a)
			b, err := m.getBlock(ctx, blockName(p))
			if datastore.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("blocks of node %q: %w", node, err)
			}
			if b.affineTo(node) {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// PoolUsage is the usage of one pool (or, with an empty Name and an invalid
// CIDR, of the blocks that lie in no pool).
type PoolUsage struct {
	Name     string
	CIDR     netip.Prefix
	Disabled bool
	// Total is the pool's size; a float because IPv6 pools hold more than
	// 2^64 addresses.
	Total  float64
	InUse  int
	Blocks []BlockUsage
}

// BlockUsage is the usage of one block.
type BlockUsage struct {
	CIDR  netip.Prefix
	Node  string // node the block is affine to, "" for none
	Total int
	InUse int
}

// Usage reports, per pool and per block, how many addresses are in use.
func (m *IPAM) Usage(ctx context.Context) ([]PoolUsage, error) {
	pools, err := m.loadPools(ctx)
	if err != nil {
		return nil, err
	}
	blocks, err := m.listBlocks(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(blocks, func(a, b *blockState) int { return comparePrefix(a.prefix, b.prefix) })
	out := make([]PoolUsage, len(pools))
	for i, p := range pools {
		out[i] = PoolUsage{Name: p.name, CIDR: p.cidr, Disabled: p.disabled, Total: math.Exp2(float64(p.cidr.Addr().BitLen() - p.cidr.Bits()))}
	}
	var orphans PoolUsage
	for _, b := range blocks {
		u := BlockUsage{CIDR: b.prefix, Node: b.owner(), Total: b.size(), InUse: b.inUse()}
		dst := &orphans
		for i := range pools {
			if pools[i].cidr.Overlaps(b.prefix) {
				dst = &out[i]
				break
			}
		}
		dst.Blocks = append(dst.Blocks, u)
		dst.InUse += u.InUse
		if dst == &orphans {
			dst.Total += float64(u.Total)
		}
	}
	if len(orphans.Blocks) > 0 {
		out = append(out, orphans)
	}
	return out, nil
}
