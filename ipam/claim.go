package ipam

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

// Internal outcomes of claim steps; none reaches a caller.
var (
	errClaimLost      = errors.New("block was claimed by another node")
	errStaleAffinity  = errors.New("affinity names a block that is not the node's")
	errNoFreeBlocks   = errors.New("no unclaimed blocks left in the pools")
	errNotOwner       = errors.New("block is not affine to the node")
	errBlockGone      = errors.New("block no longer exists")
	errAffinityChange = errors.New("affinity changed while claiming")
)

// affinityPrefix parses the block CIDR of an affinity.
func affinityPrefix(a *v3.BlockAffinity) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(a.Spec.CIDR)
	if err != nil {
		return p, fmt.Errorf("block affinity %q: invalid cidr %q: %w", a.Name, a.Spec.CIDR, err)
	}
	return p, nil
}

func isHostAffinity(a *v3.BlockAffinity) bool { return a.Spec.Type == "" || a.Spec.Type == "host" }

// nodeAffinities lists node's host affinities (any state) for blocks of
// version ver inside pools (all pools of ver when pools is nil), in address
// order.
func (m *IPAM) nodeAffinities(ctx context.Context, node string, ver int, pools []pool) ([]*v3.BlockAffinity, error) {
	all, err := m.listAffinities(ctx)
	if err != nil {
		return nil, err
	}
	type item struct {
		p netip.Prefix
		a *v3.BlockAffinity
	}
	var items []item
	for _, a := range all {
		if a.Spec.Node != node || !isHostAffinity(a) {
			continue
		}
		p, err := affinityPrefix(a)
		if err != nil {
			m.log.Warn("skipping malformed block affinity", "affinity", a.Name, "err", err)
			continue
		}
		if (ver == 4) != p.Addr().Is4() || (pools != nil && !inPools(pools, p)) {
			continue
		}
		items = append(items, item{p, a})
	}
	slices.SortFunc(items, func(x, y item) int { return comparePrefix(x.p, y.p) })
	out := make([]*v3.BlockAffinity, len(items))
	for i, it := range items {
		out[i] = it.a
	}
	return out, nil
}

// pendingAffinity is claim step 1: create node's affinity for p in state
// pending, or re-arm an existing one that is not confirmed.
func (m *IPAM) pendingAffinity(ctx context.Context, node string, p netip.Prefix) (*v3.BlockAffinity, error) {
	a := &v3.BlockAffinity{}
	a.Name = affinityName(node, p)
	a.Spec = v3.BlockAffinitySpec{State: v3.AffinityStatePending, Node: node, Type: "host", CIDR: p.String()}
	created, err := m.ds.Create(ctx, a)
	if err == nil {
		return created.(*v3.BlockAffinity), nil
	}
	if !datastore.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create pending affinity of node %q for block %s: %w", node, p, err)
	}
	cur, err := getAs[*v3.BlockAffinity](ctx, m.ds, affinityKey(a.Name))
	if datastore.IsNotFound(err) {
		return nil, errAffinityChange
	}
	if err != nil {
		return nil, fmt.Errorf("read affinity of node %q for block %s: %w", node, p, err)
	}
	if cur.Spec.State == v3.AffinityStateConfirmed {
		return cur, nil
	}
	return m.setAffinityState(ctx, cur, v3.AffinityStatePending)
}

func (m *IPAM) setAffinityState(ctx context.Context, a *v3.BlockAffinity, s v3.BlockAffinityState) (*v3.BlockAffinity, error) {
	a.Spec.State = s
	u, err := m.ds.Update(ctx, a)
	if err != nil {
		return nil, fmt.Errorf("mark affinity %q %s: %w", a.Name, s, err)
	}
	return u.(*v3.BlockAffinity), nil
}

// confirm is claim step 3.
func (m *IPAM) confirm(ctx context.Context, a *v3.BlockAffinity) error {
	if a.Spec.State == v3.AffinityStateConfirmed {
		return nil
	}
	_, err := m.setAffinityState(ctx, a, v3.AffinityStateConfirmed)
	if err == nil || !datastore.IsConflict(err) {
		return err
	}
	// Another request of the same node may have confirmed it meanwhile.
	cur, gerr := getAs[*v3.BlockAffinity](ctx, m.ds, affinityKey(a.Name))
	if gerr == nil && cur.Spec.State == v3.AffinityStateConfirmed {
		return nil
	}
	return err
}

// claimWithAffinity is claim steps 2 and 3, given node's pending affinity
// for p. It returns errClaimLost when another node owns the block.
func (m *IPAM) claimWithAffinity(ctx context.Context, a *v3.BlockAffinity, node string, p netip.Prefix, strict bool) (*blockState, error) {
	created, err := m.ds.Create(ctx, newBlock(p, node, strict, m.now()))
	var b *blockState
	switch {
	case err == nil:
		rec := created.(*v3.IPAMBlock)
		if b, err = decodeBlock(rec); err != nil {
			return nil, err
		}
		m.blocks.put(copyBlockRecord(rec))
		m.log.Info("claimed block", "node", node, "block", p)
	case datastore.IsAlreadyExists(err):
		b, err = m.getBlock(ctx, blockName(p))
		if datastore.IsNotFound(err) {
			return nil, errBlockGone // deleted meanwhile: start over
		}
		if err != nil {
			return nil, fmt.Errorf("read block %s: %w", p, err)
		}
		if !b.affineTo(node) {
			m.deleteAffinity(ctx, a)
			return nil, errClaimLost
		}
	default:
		return nil, fmt.Errorf("create block %s for node %q: %w", p, node, err)
	}
	if err := m.confirm(ctx, a); err != nil {
		return nil, fmt.Errorf("confirm affinity of node %q for block %s: %w", node, p, err)
	}
	return b, nil
}

// deleteAffinity removes an affinity that turned out stale. A failure is only
// logged: the next walk of the node's affinities finds it stale again.
func (m *IPAM) deleteAffinity(ctx context.Context, a *v3.BlockAffinity) {
	_, err := m.ds.Delete(ctx, affinityKey(a.Name), a.ResourceVersion)
	if err != nil && !datastore.IsNotFound(err) {
		m.log.Warn("could not delete stale block affinity", "affinity", a.Name, "err", err)
	}
}

// ensureAffine turns an affinity found in the listing into a usable,
// confirmed block of the node, finishing a claim that a crash interrupted:
// a pending affinity without a block gets its block, a pending affinity
// whose block is the node's gets confirmed. An affinity for a block that is
// not the node's is deleted (errStaleAffinity).
func (m *IPAM) ensureAffine(ctx context.Context, a *v3.BlockAffinity, node string, strict bool) (*blockState, error) {
	p, err := affinityPrefix(a)
	if err != nil {
		return nil, err
	}
	b, err := m.getBlock(ctx, blockName(p))
	if datastore.IsNotFound(err) {
		m.log.Info("affinity without block: finishing the claim", "node", node, "block", p)
		if a.Spec.State == v3.AffinityStateConfirmed {
			if a, err = m.setAffinityState(ctx, a, v3.AffinityStatePending); err != nil {
				return nil, err
			}
		}
		return m.claimWithAffinity(ctx, a, node, p, strict)
	}
	if err != nil {
		return nil, fmt.Errorf("read block %s: %w", p, err)
	}
	if !b.affineTo(node) {
		m.log.Info("deleting stale block affinity", "node", node, "block", p, "owner", b.owner())
		m.deleteAffinity(ctx, a)
		return nil, errStaleAffinity
	}
	// An empty state is confirmed: records written by old Calico versions.
	if a.Spec.State == v3.AffinityStateConfirmed || a.Spec.State == "" {
		return b, nil
	}
	m.log.Info("confirming block affinity left pending", "node", node, "block", p)
	if a, err = m.setAffinityState(ctx, a, v3.AffinityStatePending); err != nil {
		return nil, err
	}
	// Rewrite the block so that anyone who read it before this repair has
	// to read it again.
	b.rec.Spec.SequenceNumber++
	u, err := m.updateBlock(ctx, b.rec)
	if err != nil {
		return nil, fmt.Errorf("touch block %s: %w", p, err)
	}
	if b, err = decodeBlock(u); err != nil {
		return nil, err
	}
	if err := m.confirm(ctx, a); err != nil {
		return nil, err
	}
	return b, nil
}

// errOwnBlockAppeared: while looking for a block to claim, one of the
// node's own blocks with room turned up that the caller has not tried (a
// concurrent request of the same node claimed it): use it, do not claim.
var errOwnBlockAppeared = errors.New("the node has a block with room it has not tried")

// claimNewBlock claims the first unclaimed block of the pools (in pool
// order, then address order) for node.
// walked holds the blocks the caller has tried; announced the ones it was
// already sent back for.
func (m *IPAM) claimNewBlock(ctx context.Context, node string, pools []pool, strict bool, walked, announced map[netip.Prefix]bool) (*blockState, error) {
	for attempt := range datastoreRetries {
		if err := backoff(ctx, attempt); err != nil {
			return nil, err
		}
		blocks, bad, err := m.listAllBlocks(ctx)
		if err != nil {
			return nil, err
		}
		existing := make([]netip.Prefix, len(blocks), len(blocks)+len(bad))
		for _, b := range bad {
			if b.cidr.IsValid() {
				existing = append(existing, b.cidr)
			}
		}
		for i, b := range blocks {
			existing[i] = b.prefix
			if b.affineTo(node) && !walked[b.prefix] && !announced[b.prefix] && b.free() > 0 && inPools(pools, b.prefix) {
				// Report each such block once: if the caller's walk does not
				// find it (no usable affinity), it must not come back here.
				announced[b.prefix] = true
				return nil, errOwnBlockAppeared
			}
		}
		var cand netip.Prefix
		found := false
		for _, p := range pools {
			if cand, found = firstUnclaimed(p, existing); found {
				break
			}
		}
		if !found {
			return nil, errNoFreeBlocks
		}
		a, err := m.pendingAffinity(ctx, node, cand)
		if err != nil {
			if isRetryable(err) {
				continue
			}
			return nil, err
		}
		b, err := m.claimWithAffinity(ctx, a, node, cand, strict)
		switch {
		case err == nil:
			return b, nil
		case errors.Is(err, errClaimLost), isRetryable(err):
			m.log.Debug("lost the race for a block, trying another", "node", node, "block", cand)
			continue
		default:
			return nil, err
		}
	}
	return nil, fmt.Errorf("claim a block for node %q: %w", node, ErrTooManyRetries)
}

// releaseAffinity gives up node's affinity for block p (Calico's
// releaseBlockAffinity): pendingDeletion, then delete the block if empty or
// clear its affinity, then delete the affinity.
func (m *IPAM) releaseAffinity(ctx context.Context, node string, p netip.Prefix) error {
	name := affinityName(node, p)
	for attempt := range datastoreRetries {
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
		a, err := getAs[*v3.BlockAffinity](ctx, m.ds, affinityKey(name))
		if datastore.IsNotFound(err) {
			a = nil
		} else if err != nil {
			return fmt.Errorf("read affinity %q: %w", name, err)
		}
		b, err := m.getBlock(ctx, blockName(p))
		if datastore.IsNotFound(err) {
			b = nil
		} else if err != nil {
			return fmt.Errorf("read block %s: %w", p, err)
		}
		if b == nil || !b.affineTo(node) {
			if a == nil {
				return nil
			}
			// Stale affinity: the block is gone or someone else's.
			if _, err := m.ds.Delete(ctx, affinityKey(name), a.ResourceVersion); err != nil && !datastore.IsNotFound(err) {
				if datastore.IsConflict(err) {
					continue
				}
				return fmt.Errorf("delete affinity %q: %w", name, err)
			}
			return nil
		}
		if a != nil && a.Spec.State != v3.AffinityStatePendingDeletion {
			if a, err = m.setAffinityState(ctx, a, v3.AffinityStatePendingDeletion); err != nil {
				if datastore.IsConflict(err) || datastore.IsNotFound(err) {
					continue
				}
				return err
			}
		}
		if b.empty() {
			err = m.deleteBlock(ctx, b.rec)
			if datastore.IsNotFound(err) {
				err = nil
			}
		} else {
			b.rec.Spec.Affinity = nil
			b.rec.Spec.AffinityClaimTime = nil
			b.rec.Spec.SequenceNumber++
			_, err = m.updateBlock(ctx, b.rec)
		}
		if datastore.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("release block %s of node %q: %w", p, node, err)
		}
		if a != nil {
			_, err = m.ds.Delete(ctx, affinityKey(name), a.ResourceVersion)
			if datastore.IsConflict(err) {
				continue // next round sees a stale affinity and deletes it
			}
			if err != nil && !datastore.IsNotFound(err) {
				return fmt.Errorf("delete affinity %q: %w", name, err)
			}
		}
		m.log.Info("released block affinity", "node", node, "block", p, "empty", b.empty())
		return nil
	}
	return fmt.Errorf("release block %s of node %q: %w", p, node, ErrTooManyRetries)
}

// ReleaseHostAffinities gives up every block of node, as when the node is
// deleted: empty blocks are deleted, blocks with addresses keep them but
// lose their affinity (their addresses stay valid until released), and the
// node's affinities are deleted. Safe to repeat; it finishes what an earlier
// interrupted call started.
func (m *IPAM) ReleaseHostAffinities(ctx context.Context, node string) error {
	if node == "" {
		return errors.New("release host affinities: node name is empty")
	}
	todo := map[netip.Prefix]bool{}
	for _, ver := range []int{4, 6} {
		affs, err := m.nodeAffinities(ctx, node, ver, nil)
		if err != nil {
			return fmt.Errorf("release affinities of node %q: %w", node, err)
		}
		for _, a := range affs {
			if p, err := affinityPrefix(a); err == nil {
				todo[p] = true
			}
		}
	}
	// Blocks that name the node but lost their affinity record.
	blocks, err := m.listBlocks(ctx)
	if err != nil {
		return fmt.Errorf("release affinities of node %q: %w", node, err)
	}
	for _, b := range blocks {
		if b.affineTo(node) {
			todo[b.prefix] = true
		}
	}
	var errs []error
	for _, p := range slices.SortedFunc(maps.Keys(todo), comparePrefix) {
		if err := m.releaseAffinity(ctx, node, p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("release affinities of node %q: %w", node, err)
	}
	return nil
}

// comparePrefix orders prefixes by address, then length.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}
