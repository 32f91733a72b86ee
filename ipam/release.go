package ipam

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

// ReleaseOptions names one address to release and, optionally, which
// allocation of it the caller means.
type ReleaseOptions struct {
	Addr netip.Addr
	// HandleID, when set, releases the address only while it belongs to
	// this handle.
	HandleID string
	// SequenceNumber, when set, releases the address only while it is the
	// allocation the caller saw (Allocation.SequenceNumber): an address
	// released and assigned again since carries a new number and is left
	// alone.
	SequenceNumber *uint64
}

// ReleaseResult says what happened to each address of a Release.
type ReleaseResult struct {
	Released    []netip.Addr // freed by this call
	Unallocated []netip.Addr // were not allocated: nothing to do
	Stale       []netip.Addr // allocated, but not as the options said: left alone
}

// ReleaseIPs frees the given addresses whoever holds them, and returns those
// that were not allocated. Releasing a free address is not an error.
func (m *IPAM) ReleaseIPs(ctx context.Context, ips ...netip.Addr) (unallocated []netip.Addr, err error) {
	opts := make([]ReleaseOptions, len(ips))
	for i, ip := range ips {
		opts[i] = ReleaseOptions{Addr: ip}
	}
	res, err := m.Release(ctx, opts...)
	return res.Unallocated, err
}

// Release frees addresses that still match their options. Addresses are
// grouped by block and each block is rewritten once (compare-and-swap);
// handles are decremented after their block is written.
func (m *IPAM) Release(ctx context.Context, opts ...ReleaseOptions) (ReleaseResult, error) {
	var res ReleaseResult
	if len(opts) == 0 {
		return res, nil
	}
	for i := range opts {
		opts[i].Addr = opts[i].Addr.Unmap()
		if !opts[i].Addr.IsValid() {
			return res, errors.New("release: invalid address")
		}
	}
	// Releasing looks in every pool, disabled ones too.
	pools, err := m.loadPools(ctx)
	if err != nil {
		return res, fmt.Errorf("release: %w", err)
	}
	var blocks []*blockState // listed lazily, for addresses not where their pool says
	byBlock := map[netip.Prefix][]ReleaseOptions{}
	for _, o := range opts {
		p, ok := poolFor(pools, o.Addr)
		if !ok {
			if blocks == nil {
				if blocks, err = m.listBlocks(ctx); err != nil {
					return res, fmt.Errorf("release: %w", err)
				}
			}
			bp, found := containingBlock(blocks, o.Addr)
			if !found {
				res.Unallocated = append(res.Unallocated, o.Addr)
				continue
			}
			byBlock[bp] = append(byBlock[bp], o)
			continue
		}
		byBlock[p.blockFor(o.Addr)] = append(byBlock[p.blockFor(o.Addr)], o)
	}
	var errs []error
	for _, bp := range slices.SortedFunc(maps.Keys(byBlock), comparePrefix) {
		group := byBlock[bp]
		r, found, err := m.releaseFromBlock(ctx, bp, group)
		if err == nil && !found {
			// The pool's blockSize may not be the block's (a pool re-created
			// with another size): look for the block that really holds them.
			if blocks == nil {
				blocks, err = m.listBlocks(ctx)
			}
			if err == nil {
				if real, ok := containingBlock(blocks, group[0].Addr); ok && real != bp {
					r, _, err = m.releaseFromBlock(ctx, real, group)
				} else {
					for _, o := range group {
						r.Unallocated = append(r.Unallocated, o.Addr)
					}
				}
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res.Released = append(res.Released, r.Released...)
		res.Unallocated = append(res.Unallocated, r.Unallocated...)
		res.Stale = append(res.Stale, r.Stale...)
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("release: %w", err)
	}
	return res, nil
}

func containingBlock(blocks []*blockState, a netip.Addr) (netip.Prefix, bool) {
	for _, b := range blocks {
		if b.prefix.Contains(a) {
			return b.prefix, true
		}
	}
	return netip.Prefix{}, false
}

// releaseFromBlock releases addresses of one block; found is false when the
// block does not exist.
func (m *IPAM) releaseFromBlock(ctx context.Context, p netip.Prefix, opts []ReleaseOptions) (res ReleaseResult, found bool, err error) {
	for attempt := range datastoreRetries {
		if err := backoff(ctx, attempt); err != nil {
			return res, false, err
		}
		b, err := m.getBlock(ctx, blockName(p))
		if datastore.IsNotFound(err) {
			return res, false, nil
		}
		if err != nil {
			return res, false, fmt.Errorf("read block %s: %w", p, err)
		}
		var reqs []releaseReq
		var outside []netip.Addr
		for _, o := range opts {
			ord, ok := b.ordinalOf(o.Addr)
			if !ok {
				outside = append(outside, o.Addr)
				continue
			}
			reqs = append(reqs, releaseReq{ord: ord, handle: o.HandleID, seq: o.SequenceNumber})
		}
		r := b.release(reqs)
		res = ReleaseResult{Unallocated: outside}
		for _, o := range r.unallocated {
			res.Unallocated = append(res.Unallocated, b.addrOf(o))
		}
		for _, o := range r.stale {
			res.Stale = append(res.Stale, b.addrOf(o))
		}
		if len(r.released) == 0 {
			return res, true, nil
		}
		if err := m.writeReleased(ctx, b); err != nil {
			if datastore.IsConflict(err) || datastore.IsNotFound(err) {
				continue
			}
			return ReleaseResult{}, true, fmt.Errorf("write block %s: %w", p, err)
		}
		for _, o := range r.released {
			res.Released = append(res.Released, b.addrOf(o))
		}
		for h, n := range r.byHandle {
			if err := m.addToHandle(ctx, h, p, -n); err != nil {
				m.log.Warn("released addresses but could not decrement their handle; it now over-counts", "handle", h, "block", p, "err", err)
			}
		}
		m.log.Info("released addresses", "block", p, "addrs", res.Released)
		return res, true, nil
	}
	return res, true, fmt.Errorf("release from block %s: %w", p, ErrTooManyRetries)
}

// writeReleased stores a block after addresses were freed in it: a block
// that is now empty and affine to nobody is deleted (as Calico does);
// empty affine blocks stay with their node.
func (m *IPAM) writeReleased(ctx context.Context, b *blockState) error {
	if b.empty() && b.rec.Spec.Affinity == nil {
		return m.deleteBlock(ctx, b.rec)
	}
	b.rec.Spec.SequenceNumber++
	_, err := m.updateBlock(ctx, b.rec)
	return err
}

// ReleaseByHandle frees every address of a handle and deletes the handle.
// A handle that does not exist is success. Handles are per container, so the
// same handle must not be assigned and released at the same time.
func (m *IPAM) ReleaseByHandle(ctx context.Context, handleID string) error {
	_, err := m.ReleaseHandle(ctx, handleID)
	return err
}

// ReleaseHandle is ReleaseByHandle that also returns the addresses it
// freed (none for a handle that does not exist).
func (m *IPAM) ReleaseHandle(ctx context.Context, handleID string) ([]netip.Addr, error) {
	if handleID == "" {
		return nil, errors.New("release by handle: handle is empty")
	}
	h, err := getAs[*v3.IPAMHandle](ctx, m.ds, handleKey(handleName(handleID)))
	if datastore.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("release handle %q: read handle: %w", handleID, err)
	}
	var released []netip.Addr
	var errs []error
	keys := slices.Sorted(maps.Keys(h.Spec.Block))
	for i, key := range keys {
		p, err := netip.ParsePrefix(key)
		if err != nil {
			errs = append(errs, fmt.Errorf("handle %q names invalid block %q", handleID, key))
			continue
		}
		addrs, err := m.releaseHandleInBlock(ctx, handleID, p)
		released = append(released, addrs...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// The block holds nothing of the handle any more, whatever the
		// count said (a crash may have left it over-counting). A handle of
		// one block, as a pod's is, is deleted at the version read above;
		// anything else goes through the read-modify-write.
		if len(keys) == 1 && i == 0 {
			_, err := m.ds.Delete(ctx, handleKey(h.Name), h.ResourceVersion)
			if err == nil || datastore.IsNotFound(err) {
				continue
			}
			if !datastore.IsConflict(err) {
				errs = append(errs, fmt.Errorf("delete handle %q: %w", handleID, err))
				continue
			}
		}
		if err := m.adjustHandle(ctx, handleID, p, func(int) int { return 0 }, false); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return released, fmt.Errorf("release handle %q: %w", handleID, err)
	}
	return released, nil
}

func (m *IPAM) releaseHandleInBlock(ctx context.Context, handleID string, p netip.Prefix) ([]netip.Addr, error) {
	// Start from the cached copy when it shows the handle's addresses (see
	// blockCache): a stale one fails the compare-and-swap and is read again.
	// One that shows none may predate the allocation: only a read can tell.
	b := m.blocks.get(blockName(p))
	if b != nil && !b.holds(handleID) {
		b = nil
	}
	for attempt := range datastoreRetries {
		if err := backoff(ctx, attempt); err != nil {
			return nil, err
		}
		if b == nil || attempt > 0 {
			var err error
			b, err = m.getBlock(ctx, blockName(p))
			if datastore.IsNotFound(err) {
				return nil, nil
			}
			if err != nil {
				return nil, fmt.Errorf("read block %s: %w", p, err)
			}
		}
		ords := b.releaseHandle(handleID)
		if len(ords) == 0 {
			return nil, nil
		}
		if err := m.writeReleased(ctx, b); err != nil {
			if datastore.IsConflict(err) || datastore.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("write block %s: %w", p, err)
		}
		addrs := make([]netip.Addr, len(ords))
		for i, o := range ords {
			addrs[i] = b.addrOf(o)
		}
		m.log.Info("released addresses of handle", "handle", handleID, "block", p, "count", len(ords))
		return addrs, nil
	}
	return nil, fmt.Errorf("release handle %q in block %s: %w", handleID, p, ErrTooManyRetries)
}
