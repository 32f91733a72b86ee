package ipam

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

// AssignArgs is an AutoAssign request.
type AssignArgs struct {
	// Num4 and Num6 are how many IPv4 and IPv6 addresses to assign.
	Num4, Num6 int
	// HandleID groups the addresses for ReleaseByHandle
	// ("k8s-pod-network.<containerID>" for pods). Empty means no handle.
	HandleID string
	// Attrs are stored with the addresses: "namespace", "pod", "node",
	// "timestamp" and anything else. "node" defaults to Node and
	// "timestamp" to the current time.
	Attrs map[string]string
	// Node is the node the addresses are for.
	Node string
	// IPv4Pools and IPv6Pools name the pools to use (by name or CIDR),
	// from CNI's ipv4_pools/ipv6_pools or the cni.projectcalico.org/ipv4pools
	// annotation. Empty means every Automatic pool that selects the node.
	IPv4Pools, IPv6Pools []string
	// Tunnel asks for pools that allow Tunnel rather than Workload addresses.
	Tunnel bool
}

// assigned is one address this call took, with what is needed to undo it
// without touching anyone else's allocation.
type assigned struct {
	prefix netip.Prefix
	seq    uint64
}

// AutoAssign assigns addresses to a node: from its blocks first, then from
// newly claimed blocks, then (unless strictAffinity) from other nodes'
// blocks. Each address is returned with its block's prefix length, as
// Calico does. Either every requested address is assigned or none is.
func (m *IPAM) AutoAssign(ctx context.Context, args AssignArgs) (v4, v6 []netip.Prefix, err error) {
	v4, v6, _, err = m.autoAssignOnce(ctx, args, false)
	return v4, v6, err
}

// AssignOnce is AutoAssign for a handle that stands for one workload (a
// CNI ADD's "k8s-pod-network.<containerID>"): when the handle already
// holds addresses, a retried ADD, it returns those with existing set and
// assigns nothing. Finding out costs nothing extra for a new handle, whose
// record this call creates anyway.
func (m *IPAM) AssignOnce(ctx context.Context, args AssignArgs) (v4, v6 []netip.Prefix, existing bool, err error) {
	if args.HandleID == "" {
		return nil, nil, false, errors.New("assign once: handle is empty")
	}
	return m.autoAssignOnce(ctx, args, true)
}

func (m *IPAM) autoAssignOnce(ctx context.Context, args AssignArgs, once bool) (v4, v6 []netip.Prefix, existing bool, err error) {
	if args.Node == "" {
		return nil, nil, false, errors.New("auto-assign: node name is empty")
	}
	if args.Num4 < 0 || args.Num6 < 0 {
		return nil, nil, false, fmt.Errorf("auto-assign: negative address count (%d IPv4, %d IPv6)", args.Num4, args.Num6)
	}
	if args.Num4 == 0 && args.Num6 == 0 {
		return nil, nil, false, nil
	}
	// The node, pools and configuration are read before queueing for the
	// node: nothing in them is compare-and-swapped, and the node's writes
	// then wait for nothing else. The handle is counted meanwhile for the
	// block the request will most likely get (countEarly).
	req := &assignRequest{args: args, attrs: m.attrsFor(args.Attrs, args.Node)}
	var wg sync.WaitGroup
	goCatch(&wg, &err, func() (err error) { req.in, err = m.readInputs(ctx, args.Node); return err })
	var earlyErr error // countEarly only logs its failures; a panic is this
	created := false
	if args.HandleID != "" {
		goCatch(&wg, &earlyErr, func() error { created = m.countEarly(ctx, req, once); return nil })
	}
	wg.Wait()
	err = errors.Join(err, earlyErr)
	if err == nil && once && !created {
		// The handle may exist: read what it holds.
		var held []netip.Prefix
		if held, err = m.handlePrefixes(ctx, args.HandleID); err == nil && len(held) > 0 {
			m.dropEarly(ctx, req)
			for _, p := range held {
				if p.Addr().Is4() {
					v4 = append(v4, p)
				} else {
					v6 = append(v6, p)
				}
			}
			return v4, v6, true, nil
		}
	}
	if err != nil {
		m.dropEarly(ctx, req)
		return nil, nil, false, fmt.Errorf("auto-assign for node %q: %w", args.Node, err)
	}
	got4, got6, err := m.assignQueued(ctx, req)
	if err != nil {
		return nil, nil, false, err
	}
	return prefixes(got4), prefixes(got6), false, nil
}

// use is the pool use the request's addresses are for.
func (a AssignArgs) use() v3.IPPoolAllowedUse {
	if a.Tunnel {
		return v3.IPPoolAllowedUseTunnel
	}
	return v3.IPPoolAllowedUseWorkload
}

// assignRequest is one AutoAssign call, shared by its IPv4 and IPv6 halves.
type assignRequest struct {
	args  AssignArgs
	attrs map[string]string
	in    inputs
	// handleWritten: this request has written the handle record, so it
	// exists; until then, the handle is most likely new (one per
	// container), and creating it is tried before reading it.
	handleWritten bool
	// earlyN addresses of block early were counted in the handle ahead of
	// the block write (countEarly). The block write that uses early takes
	// the count over; whatever is left is taken back (dropEarly).
	early  netip.Prefix
	earlyN int
	// reservedN addresses of block reserved are reserved in the block
	// cache for this request's guess (blockCache.reserveFirst).
	reserved  netip.Prefix
	reservedN int
}

// countEarly counts the request's first addresses in its handle for the
// node's cached block with room, while the inputs are still being read:
// the handle write must come before the block write (see the package
// comment), and this way it costs no time of its own when the guess is
// right, which it is unless the block filled up or the request names pools
// that do not hold it. A wrong guess is taken back; an over-counting handle
// in between is the state a crash may leave anyway.
//
// With createOnly, only a new handle is counted (AssignOnce must not count
// addresses for a handle that turns out to hold some already). It reports
// whether it created the handle.
func (m *IPAM) countEarly(ctx context.Context, req *assignRequest, createOnly bool) (created bool) {
	ver, n := 4, req.args.Num4
	if n == 0 {
		ver, n = 6, req.args.Num6
	}
	p, ok := m.blocks.reserveFirst(req.args.Node, ver, n)
	if !ok {
		return false
	}
	req.reserved, req.reservedN = p, n
	var err error
	if createOnly {
		err = m.createHandle(ctx, req.args.HandleID, p, n)
	} else {
		err = m.adjustHandle(ctx, req.args.HandleID, p, plus(n), true)
	}
	if err != nil {
		if !datastore.IsAlreadyExists(err) {
			m.log.Debug("could not count the handle ahead of the block write; counting it with the write", "handle", req.args.HandleID, "err", err)
		}
		return false
	}
	req.handleWritten = true
	req.early, req.earlyN = p, n
	return createOnly
}

// takeEarly hands the early count over to a write of block p of n addresses
// for the request, or returns 0 when the early count is for something else.
func (req *assignRequest) takeEarly(p netip.Prefix) int {
	if req.earlyN == 0 || req.early != p {
		return 0
	}
	n := req.earlyN
	req.earlyN = 0
	return n
}

// dropEarly takes back an early count no block write used, and ends the
// request's reservation of the block it guessed. Every request that went
// through countEarly comes here once it is finished.
func (m *IPAM) dropEarly(ctx context.Context, req *assignRequest) {
	if req.earlyN != 0 {
		m.undoHandle(ctx, req.args.HandleID, req.early, req.earlyN)
		req.earlyN = 0
	}
	if req.reservedN != 0 {
		m.blocks.unreserve(req.reserved, req.reservedN)
		req.reservedN = 0
	}
}

func prefixes(as []assigned) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range as {
		out = append(out, a.prefix)
	}
	return out
}

func (m *IPAM) attrsFor(in map[string]string, node string) map[string]string {
	attrs := maps.Clone(in)
	if attrs == nil {
		attrs = map[string]string{}
	}
	if attrs[AttributeNode] == "" {
		attrs[AttributeNode] = node
	}
	if attrs[AttributeTimestamp] == "" {
		// Calico's CNI plugin writes time.Now().UTC().String().
		attrs[AttributeTimestamp] = m.now().UTC().String()
	}
	return attrs
}

// autoAssign assigns num addresses of one IP version, or none: the
// one-request path, run with the node's lock held (by writeBatch).
func (m *IPAM) autoAssign(ctx context.Context, req *assignRequest, ver, num int, requested []string) (got []assigned, err error) {
	args := req.args
	defer func() {
		if err != nil {
			m.rollback(ctx, args.HandleID, got)
			got = nil
		}
	}()
	pools, err := selectPools(req.in.pools, ver, requested, args.Node, req.in.labels, args.use())
	if err != nil {
		return nil, err
	}
	cfg := req.in.cfg
	node := args.Node
	take := func(b *blockState, owner string) error {
		as, err := m.assignFromBlock(ctx, req, b, num-len(got), owner)
		got = append(got, as...)
		return err
	}

	// 0. The node's blocks that had room when this IPAM value last saw
	// them, from its cached copies: in the steady state this is the only
	// step, and it costs the handle write and the block write. A copy that
	// is out of date fails its compare-and-swap and is read again; a block
	// that is no longer the node's is skipped (and the walk below decides).
	for _, b := range m.blocks.withRoom(node, ver, pools) {
		if len(got) == num {
			break
		}
		if err := take(b, node); err != nil && !errors.Is(err, errNotOwner) && !errors.Is(err, errBlockGone) {
			return got, err
		}
	}

	// 1. The node's blocks, then 2. new blocks, one at a time: after each
	// claim the walk of the node's affinities finds the new block (and any
	// block a concurrent request of the node claimed meanwhile).
	walked := map[netip.Prefix]bool{}    // the node's blocks this request has tried
	announced := map[netip.Prefix]bool{} // see claimNewBlock
	capped := false
	round := 0
	for ; len(got) < num && round < datastoreRetries; round++ {
		if err := backoff(ctx, round); err != nil {
			return got, err
		}
		affs, err := m.nodeAffinities(ctx, node, ver, pools)
		if err != nil {
			return got, err
		}
		owned, raced := 0, false
		for _, a := range affs {
			if a.Spec.State == v3.AffinityStatePendingDeletion {
				continue // being given up: not ours any more
			}
			owned++
			p, _ := affinityPrefix(a)
			if walked[p] || len(got) == num {
				continue
			}
			walked[p] = true
			b, err := m.ensureAffine(ctx, a, node, cfg.StrictAffinity)
			if err != nil {
				if isRetryable(err) {
					walked[p] = false // look again next round
					raced = true
					continue
				}
				if errors.Is(err, errStaleAffinity) || errors.Is(err, errClaimLost) {
					owned--
					continue
				}
				if errors.Is(err, errMalformedBlock) {
					// Never allocate from it; `ipam check` reports it.
					m.log.Error("skipping unusable block of the node", "node", node, "err", err)
					continue
				}
				return got, err
			}
			if b.free() == 0 {
				continue
			}
			if err := take(b, node); err != nil && !errors.Is(err, errNotOwner) && !errors.Is(err, errBlockGone) {
				return got, err
			}
		}
		if len(got) == num {
			break
		}
		if raced {
			continue // finish with the node's blocks before claiming more
		}
		if !cfg.AutoAllocateBlocks {
			break
		}
		if cfg.MaxBlocksPerHost > 0 && owned >= cfg.MaxBlocksPerHost {
			capped = true
			break
		}
		if _, err := m.claimNewBlock(ctx, node, pools, cfg.StrictAffinity, walked, announced); err != nil {
			if errors.Is(err, errOwnBlockAppeared) {
				continue // the next walk finds it
			}
			if errors.Is(err, errNoFreeBlocks) {
				break
			}
			return got, err
		}
	}

	if round == datastoreRetries && len(got) < num {
		return got, fmt.Errorf("find blocks for node %q: %w", node, ErrTooManyRetries)
	}

	// 3. Borrow from any other block of the pools with room.
	if len(got) < num && !cfg.StrictAffinity {
		blocks, err := m.listBlocks(ctx)
		if err != nil {
			return got, err
		}
		var cands []*blockState
		for _, b := range blocks {
			if !b.affineTo(node) && b.free() > 0 && inPools(pools, b.prefix) {
				cands = append(cands, b)
			}
		}
		slices.SortFunc(cands, func(a, b *blockState) int { return comparePrefix(a.prefix, b.prefix) })
		// Start at a place derived from the node, so that nodes borrowing at
		// the same time spread over different blocks.
		start := 0
		if len(cands) > 0 {
			h := fnv.New32a()
			h.Write([]byte(node))
			start = int(h.Sum32() % uint32(len(cands)))
		}
		for i := range cands {
			if len(got) == num {
				break
			}
			b := cands[(start+i)%len(cands)]
			before := len(got)
			if err := take(b, ""); err != nil && !errors.Is(err, errBlockGone) {
				return got, err
			}
			if len(got) > before {
				m.log.Info("borrowed addresses", "node", node, "block", b.prefix, "count", len(got)-before)
			}
		}
	}

	if len(got) < num {
		var cidrs []string
		for _, p := range pools {
			cidrs = append(cidrs, p.cidr.String())
		}
		why := fmt.Sprintf("assigned %d of %d requested IPv%d addresses and released them", len(got), num, ver)
		switch {
		case capped && cfg.StrictAffinity:
			why += fmt.Sprintf("; node %q has maxBlocksPerHost=%d blocks and strictAffinity forbids borrowing", node, cfg.MaxBlocksPerHost)
		case capped:
			why += fmt.Sprintf("; node %q has maxBlocksPerHost=%d blocks and no other block has room", node, cfg.MaxBlocksPerHost)
		case cfg.StrictAffinity:
			why += "; no unclaimed blocks left and strictAffinity forbids borrowing"
		case !cfg.AutoAllocateBlocks:
			why += "; autoAllocateBlocks is off and no block has room"
		}
		return got, fmt.Errorf("%w in pools [%s]: %s", ErrNoFreeAddresses, strings.Join(cidrs, " "), why)
	}
	return got, nil
}

// isRetryable: a record changed or vanished under us (a concurrent request
// won a race); read again and retry.
func isRetryable(err error) bool {
	return datastore.IsConflict(err) || datastore.IsNotFound(err) || errors.Is(err, errBlockGone) || errors.Is(err, errAffinityChange)
}

// assignFromBlock takes up to n free addresses of a block, starting from
// the copy the caller has (a stale copy only costs a failed compare-and-swap
// and a re-read). With owner set, it only takes them while the block is
// affine to owner.
//
// The handle is counted before the block is written (see the package
// comment). A compare-and-swap that loses keeps that count for the next
// attempt on the same block instead of taking it back and adding it again;
// whatever is still counted when the block is given up is taken back.
func (m *IPAM) assignFromBlock(ctx context.Context, req *assignRequest, b *blockState, n int, owner string) (out []assigned, err error) {
	p := b.prefix
	handleID := req.args.HandleID
	counted := req.takeEarly(p) // addresses of this block in the handle's count and not in the block
	defer func() {
		if counted != 0 {
			m.undoHandle(ctx, handleID, p, counted)
		}
	}()
	for attempt := range datastoreRetries {
		if err := backoff(ctx, attempt); err != nil {
			return nil, err
		}
		if attempt > 0 {
			var err error
			b, err = m.getBlock(ctx, blockName(p))
			if datastore.IsNotFound(err) {
				return nil, errBlockGone
			}
			if err != nil {
				return nil, fmt.Errorf("read block %s: %w", p, err)
			}
		}
		if owner != "" && !b.affineTo(owner) {
			return nil, errNotOwner
		}
		seq := b.rec.Spec.SequenceNumber
		ords := b.autoAssign(n, handleID, req.attrs)
		if len(ords) == 0 {
			return nil, nil
		}
		if handleID != "" && len(ords) != counted {
			if err := m.adjustHandle(ctx, handleID, p, plus(len(ords)-counted), !req.handleWritten); err != nil {
				return nil, err
			}
			req.handleWritten = true
			counted = len(ords)
		}
		b.rec.Spec.SequenceNumber++
		if _, err := m.updateBlock(ctx, b.rec); err != nil {
			if datastore.IsConflict(err) || datastore.IsNotFound(err) {
				continue
			}
			// The write may have happened (a lost answer): keep the count.
			// A handle that over-counts is repaired by release and reported
			// by `ipam check`; one that under-counts would hide an address.
			counted = 0
			return nil, fmt.Errorf("write block %s: %w", p, err)
		}
		counted = 0
		out := make([]assigned, len(ords))
		for i, o := range ords {
			out[i] = assigned{prefix: b.prefixOf(o), seq: seq}
		}
		return out, nil
	}
	return nil, fmt.Errorf("assign from block %s: %w", p, ErrTooManyRetries)
}

// undoHandle takes back a handle increment whose block write failed. If it
// fails too, the handle over-counts, which ReleaseByHandle and `ipam check`
// cope with.
func (m *IPAM) undoHandle(ctx context.Context, handleID string, p netip.Prefix, n int) {
	if handleID == "" {
		return
	}
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	if err := m.addToHandle(cctx, handleID, p, -n); err != nil {
		m.log.Warn("could not undo handle count; it now over-counts", "handle", handleID, "block", p, "err", err)
	}
}

// cleanupContext keeps undo work going when the request's context has just
// been cancelled, for at most 30 seconds.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

// rollback releases what a failed request took, by handle and sequence
// number so that nothing assigned since is touched.
func (m *IPAM) rollback(ctx context.Context, handleID string, got []assigned) {
	if len(got) == 0 {
		return
	}
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	opts := make([]ReleaseOptions, len(got))
	for i, a := range got {
		seq := a.seq
		opts[i] = ReleaseOptions{Addr: a.prefix.Addr(), HandleID: handleID, SequenceNumber: &seq}
	}
	if _, err := m.Release(cctx, opts...); err != nil {
		m.log.Error("could not release the addresses of a failed request; `ipam check` will report them", "handle", handleID, "err", err)
	}
}

// AssignIP assigns one given address to node (claiming its block for the
// node when the block does not exist yet). It fails with ErrInUse when the
// address is taken, and when strictAffinity is set and the block is another
// node's.
func (m *IPAM) AssignIP(ctx context.Context, ip netip.Addr, handleID string, attrs map[string]string, node string) error {
	if node == "" {
		return errors.New("assign IP: node name is empty")
	}
	ip = ip.Unmap()
	if !ip.IsValid() {
		return errors.New("assign IP: invalid address")
	}
	unlock, err := m.lockNode(ctx, node)
	if err != nil {
		return fmt.Errorf("assign %s to node %q: %w", ip, node, err)
	}
	defer unlock()
	all, err := m.loadPools(ctx)
	if err != nil {
		return err
	}
	p, ok := poolFor(all, ip)
	if !ok {
		return fmt.Errorf("assign %s: %w", ip, ErrNotInPool)
	}
	if p.disabled {
		return fmt.Errorf("assign %s: %w: IP pool %s is disabled", ip, ErrPool, p)
	}
	cfg, err := m.GetConfig(ctx)
	if err != nil {
		return err
	}
	attrs = m.attrsFor(attrs, node)
	bp := p.blockFor(ip)
	for attempt := range datastoreRetries {
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
		b, err := m.getBlock(ctx, blockName(bp))
		if datastore.IsNotFound(err) {
			a, err := m.pendingAffinity(ctx, node, bp)
			if err != nil {
				if isRetryable(err) {
					continue
				}
				return err
			}
			if b, err = m.claimWithAffinity(ctx, a, node, bp, cfg.StrictAffinity); err != nil {
				if isRetryable(err) || errors.Is(err, errClaimLost) {
					continue
				}
				return err
			}
		} else if err != nil {
			return fmt.Errorf("read block %s: %w", bp, err)
		}
		if cfg.StrictAffinity && !b.affineTo(node) {
			return fmt.Errorf("assign %s to node %q: block %s is affine to %q and strictAffinity is on", ip, node, bp, b.owner())
		}
		ord, _ := b.ordinalOf(ip)
		if err := b.assign(ord, handleID, attrs); err != nil {
			if errors.Is(err, errAddressInUse) {
				return fmt.Errorf("assign %s: %w (handle %q)", ip, ErrInUse, b.handleOf(ord))
			}
			return err
		}
		if handleID != "" {
			if err := m.addToHandle(ctx, handleID, bp, 1); err != nil {
				return err
			}
		}
		b.rec.Spec.SequenceNumber++
		if _, err := m.updateBlock(ctx, b.rec); err != nil {
			m.undoHandle(ctx, handleID, bp, 1)
			if datastore.IsConflict(err) || datastore.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("write block %s: %w", bp, err)
		}
		m.log.Info("assigned address", "addr", ip, "node", node, "handle", handleID)
		return nil
	}
	return fmt.Errorf("assign %s: %w", ip, ErrTooManyRetries)
}
