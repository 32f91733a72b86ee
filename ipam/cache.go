package ipam

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"runtime/debug"
	"slices"
	"sync"

	v3 "github.com/tabbynet/tabby/api/v3"
)

// maxCachedBlocks bounds the block cache of one IPAM value. A node agent
// touches its own blocks and the few it borrows from; a tool that reads every
// block of a large cluster (ipam check) must not make the cache grow without
// limit.
const maxCachedBlocks = 4096

// blockCache remembers, per block, the last version this IPAM value read
// from or wrote to the datastore. It is a hint, never the truth: AutoAssign
// starts from a cached copy instead of listing every affinity and reading
// every block of the node, and the compare-and-swap of the write proves the
// copy current (a stale copy costs one failed write and a fresh read, exactly
// as a concurrent writer does today). Nothing that decides ownership, frees
// or deletes anything reads it.
type blockCache struct {
	mu     sync.Mutex
	blocks map[string]*v3.IPAMBlock // by block name; owned by the cache, never handed out
	// reserved counts, by block name, the addresses requests under way
	// expect to take from it (reserveFirst).
	reserved map[string]int
}

func newBlockCache() *blockCache {
	return &blockCache{blocks: map[string]*v3.IPAMBlock{}, reserved: map[string]int{}}
}

// put records rec as the latest known stored version of its block. The
// cache takes ownership of rec: callers pass a record nobody mutates (the
// datastore returns fresh copies) or a copy.
func (c *blockCache) put(rec *v3.IPAMBlock) {
	if rec == nil || rec.Name == "" || rec.ResourceVersion == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if rec.Spec.Deleted {
		delete(c.blocks, rec.Name)
		return
	}
	if old, ok := c.blocks[rec.Name]; ok && olderVersion(rec.ResourceVersion, old.ResourceVersion) {
		return // a concurrent reader got here later with an older copy
	}
	if _, ok := c.blocks[rec.Name]; !ok && len(c.blocks) >= maxCachedBlocks {
		for name := range c.blocks { // any one: it is only a hint
			delete(c.blocks, name)
			break
		}
	}
	c.blocks[rec.Name] = rec
}

// get returns a working copy of the cached block, or nil.
func (c *blockCache) get(name string) *blockState {
	c.mu.Lock()
	rec, ok := c.blocks[name]
	if ok {
		rec = copyBlockRecord(rec)
	}
	c.mu.Unlock()
	if !ok {
		return nil
	}
	b, err := decodeBlock(rec)
	if err != nil {
		return nil
	}
	return b
}

// drop forgets a block (deleted, or found missing).
func (c *blockCache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.blocks, name)
}

// withRoom returns working copies of the cached blocks affine to node, of IP
// version ver, inside pools, that had free addresses when last seen, in
// address order (the order the full walk of the node's affinities uses).
func (c *blockCache) withRoom(node string, ver int, pools []pool) []*blockState {
	aff := hostAffinity(node)
	c.mu.Lock()
	var recs []*v3.IPAMBlock
	for _, rec := range c.blocks {
		if rec.Spec.Affinity != nil && *rec.Spec.Affinity == aff && len(rec.Spec.Unallocated) > 0 {
			recs = append(recs, copyBlockRecord(rec))
		}
	}
	c.mu.Unlock()
	var out []*blockState
	for _, rec := range recs {
		b, err := decodeBlock(rec)
		if err != nil || (ver == 4) != b.prefix.Addr().Is4() || !inPools(pools, b.prefix) {
			continue
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *blockState) int { return comparePrefix(a.prefix, b.prefix) })
	return out
}

// reserveFirst picks the lowest cached block affine to node, of IP version
// ver, that had n free addresses when last seen besides those reserved by
// requests under way, and reserves n of them until unreserve: the block the
// request most likely gets. Without the reservation, every request of a
// burst would guess the same block, also the ones it has no room for.
func (c *blockCache) reserveFirst(node string, ver, n int) (netip.Prefix, bool) {
	aff := hostAffinity(node)
	c.mu.Lock()
	defer c.mu.Unlock()
	var best netip.Prefix
	bestName := ""
	for name, rec := range c.blocks {
		if rec.Spec.Affinity == nil || *rec.Spec.Affinity != aff || len(rec.Spec.Unallocated)-c.reserved[name] < n {
			continue
		}
		p, err := netip.ParsePrefix(rec.Spec.CIDR)
		if err != nil || (ver == 4) != p.Addr().Is4() {
			continue
		}
		if bestName == "" || comparePrefix(p, best) < 0 {
			best, bestName = p.Masked(), name
		}
	}
	if bestName == "" {
		return netip.Prefix{}, false
	}
	c.reserved[bestName] += n
	return best, true
}

// unreserve ends a reservation of reserveFirst.
func (c *blockCache) unreserve(p netip.Prefix, n int) {
	name := blockName(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reserved[name] -= n; c.reserved[name] <= 0 {
		delete(c.reserved, name)
	}
}

// olderVersion reports whether resource version a is older than b. Versions
// are opaque strings to the datastore's users, but both backends use
// decimal counters; anything else is treated as not older, so the newest
// put wins.
func olderVersion(a, b string) bool {
	x, okA := parseVersion(a)
	y, okB := parseVersion(b)
	return okA && okB && x < y
}

func parseVersion(s string) (uint64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// copyBlockRecord is a deep copy of a block record, much cheaper than
// v3.Clone's JSON round trip (a block is the largest IPAM record).
func copyBlockRecord(in *v3.IPAMBlock) *v3.IPAMBlock {
	out := &v3.IPAMBlock{TypeMeta: in.TypeMeta}
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	s, d := &in.Spec, &out.Spec
	*d = *s
	if s.Affinity != nil {
		a := *s.Affinity
		d.Affinity = &a
	}
	if s.AffinityClaimTime != nil {
		t := *s.AffinityClaimTime
		d.AffinityClaimTime = &t
	}
	if s.Allocations != nil {
		d.Allocations = make([]*int, len(s.Allocations))
		for i, a := range s.Allocations {
			if a != nil {
				v := *a
				d.Allocations[i] = &v
			}
		}
	}
	d.Unallocated = slices.Clone(s.Unallocated)
	if s.Attributes != nil {
		d.Attributes = make([]v3.AllocationAttribute, len(s.Attributes))
		for i, at := range s.Attributes {
			if at.HandleID != nil {
				h := *at.HandleID
				at.HandleID = &h
			}
			at.Secondary = maps.Clone(at.Secondary)
			d.Attributes[i] = at
		}
	}
	d.SequenceNumberForAllocation = maps.Clone(s.SequenceNumberForAllocation)
	return out
}

// updateBlock writes a block (compare-and-swap on its resource version) and
// remembers what was stored.
func (m *IPAM) updateBlock(ctx context.Context, rec *v3.IPAMBlock) (*v3.IPAMBlock, error) {
	u, err := m.ds.Update(ctx, rec)
	if err != nil {
		return nil, err
	}
	stored, ok := u.(*v3.IPAMBlock)
	if !ok {
		return nil, fmt.Errorf("update block %s: datastore returned %T", rec.Name, u)
	}
	m.blocks.put(copyBlockRecord(stored))
	return stored, nil
}

// deleteBlock deletes a block at the version read and forgets it.
func (m *IPAM) deleteBlock(ctx context.Context, rec *v3.IPAMBlock) error {
	_, err := m.ds.Delete(ctx, blockKey(rec.Name), rec.ResourceVersion)
	if err == nil {
		m.blocks.drop(rec.Name)
	}
	return err
}

// inputs are the records every AutoAssign reads besides blocks: the node's
// labels (for pool node selectors), the pools and the IPAM configuration.
type inputs struct {
	labels map[string]string
	pools  []pool
	cfg    Config
}

// readInputs reads the three at once: they are independent, so a request
// pays one datastore round trip for them instead of three.
func (m *IPAM) readInputs(ctx context.Context, node string) (inputs, error) {
	var in inputs
	var errs [3]error
	var wg sync.WaitGroup
	goCatch(&wg, &errs[0], func() (err error) { in.labels, err = m.nodeLabels(ctx, node); return err })
	goCatch(&wg, &errs[1], func() (err error) { in.pools, err = m.loadPools(ctx); return err })
	goCatch(&wg, &errs[2], func() (err error) { in.cfg, err = m.GetConfig(ctx); return err })
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return inputs{}, err
		}
	}
	return in, nil
}

// goCatch runs f in a goroutine of wg and stores its error in *errp. A
// panic in f becomes that error instead of the end of the process: the
// work used to run on the caller's goroutine, where the agent's gRPC server
// turns a panic into the failure of the one call.
func goCatch(wg *sync.WaitGroup, errp *error, f func() error) {
	wg.Go(func() {
		defer func() {
			if r := recover(); r != nil {
				*errp = fmt.Errorf("ipam: internal error: %v\n%s", r, debug.Stack())
			}
		}()
		*errp = f()
	})
}
