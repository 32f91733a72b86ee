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
	if args.Node == "" {
		return nil, nil, errors.New("auto-assign: node name is empty")
	}
	if args.Num4 < 0 || args.Num6 < 0 {
		return nil, nil, fmt.Errorf("auto-assign: negative address count (%d IPv4, %d IPv6)", args.Num4, args.Num6)
	}
	if args.Num4 == 0 && args.Num6 == 0 {
		return nil, nil, nil
	}
	unlock, err := m.lockNode(ctx, args.Node)
	if err != nil {
		return nil, nil, fmt.Errorf("auto-assign for node %q: %w", args.Node, err)
	}
	defer unlock()
	attrs := m.attrsFor(args.Attrs, args.Node)
	var got4, got6 []assigned
	if args.Num4 > 0 {
		if got4, err = m.autoAssign(ctx, args, attrs, 4, args.Num4, args.IPv4Pools); err != nil {
			return nil, nil, fmt.Errorf("auto-assign IPv4 for node %q: %w", args.Node, err)
		}
	}
	if args.Num6 > 0 {
		if got6, err = m.autoAssign(ctx, args, attrs, 6, args.Num6, args.IPv6Pools); err != nil {
			m.rollback(ctx, args.HandleID, got4)
			return nil, nil, fmt.Errorf("auto-assign IPv6 for node %q: %w", args.Node, err)
		}
	}
	return prefixes(got4), prefixes(got6), nil
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

// autoAssign assigns num addresses of one IP version, or none.
func (m *IPAM) autoAssign(ctx context.Context, args AssignArgs, attrs map[string]string, ver, num int, requested []string) (got []assigned, err error) {
	use := v3.IPPoolAllowedUseWorkload
	if args.Tunnel {
		use = v3.IPPoolAllowedUseTunnel
	}
	defer func() {
		if err != nil {
			m.rollback(ctx, args.HandleID, got)
			got = nil
		}
	}()
	labels, err := m.nodeLabels(ctx, args.Node)
	if err != nil {
		return nil, err
	}
	all, err := m.loadPools(ctx)
	if err != nil {
		return nil, err
	}
	pools, err := selectPools(all, ver, requested, args.Node, labels, use)
	if err != nil {
		return nil, err
	}
	cfg, err := m.GetConfig(ctx)
	if err != nil {
		return nil, err
	}
	node := args.Node
	take := func(b *blockState, owner string) error {
		as, err := m.assignFromBlock(ctx, b, num-len(got), args.HandleID, attrs, owner)
		got = append(got, as...)
		return err
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
// the copy the caller just read (a stale copy only costs a failed
// compare-and-swap and a re-read). With owner set, it only takes them while
// the block is affine to owner.
func (m *IPAM) assignFromBlock(ctx context.Context, b *blockState, n int, handleID string, attrs map[string]string, owner string) ([]assigned, error) {
	p := b.prefix
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
		ords := b.autoAssign(n, handleID, attrs)
		if len(ords) == 0 {
			return nil, nil
		}
		if handleID != "" {
			if err := m.addToHandle(ctx, handleID, p, len(ords)); err != nil {
				return nil, err
			}
		}
		b.rec.Spec.SequenceNumber++
		_, err := m.ds.Update(ctx, b.rec)
		if err != nil {
			m.undoHandle(ctx, handleID, p, len(ords))
			if datastore.IsConflict(err) || datastore.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("write block %s: %w", p, err)
		}
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
		if _, err := m.ds.Update(ctx, b.rec); err != nil {
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
