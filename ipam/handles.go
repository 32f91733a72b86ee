package ipam

import (
	"context"
	"fmt"
	"net/netip"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

// adjustHandle rewrites handleID's count for block to update(old), creating
// the handle when it is missing and deleting it when it counts nothing.
// likelyNew says the handle most likely does not exist yet: creating it is
// then tried first, which saves the read (a handle that does exist costs
// the failed create and continues as usual).
func (m *IPAM) adjustHandle(ctx context.Context, handleID string, block netip.Prefix, update func(old int) int, likelyNew bool) error {
	name := handleName(handleID)
	key := block.String()
	if n := update(0); likelyNew && n > 0 {
		err := m.createHandle(ctx, handleID, block, n)
		if err == nil {
			return nil
		}
		if !datastore.IsAlreadyExists(err) {
			return err
		}
	}
	for attempt := range datastoreRetries {
		if err := backoff(ctx, attempt); err != nil {
			return fmt.Errorf("update handle %q: %w", handleID, err)
		}
		h, err := getAs[*v3.IPAMHandle](ctx, m.ds, handleKey(name))
		if datastore.IsNotFound(err) {
			n := update(0)
			if n <= 0 {
				return nil
			}
			nh := &v3.IPAMHandle{}
			nh.Name = name
			nh.Spec = v3.IPAMHandleSpec{HandleID: handleID, Block: map[string]int{key: n}}
			_, err = m.ds.Create(ctx, nh)
			if datastore.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("create handle %q: %w", handleID, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read handle %q: %w", handleID, err)
		}
		if h.Spec.Block == nil {
			h.Spec.Block = map[string]int{}
		}
		old := h.Spec.Block[key]
		n := update(old)
		if n == old {
			return nil
		}
		if n > 0 {
			h.Spec.Block[key] = n
		} else {
			delete(h.Spec.Block, key)
		}
		if len(h.Spec.Block) == 0 {
			_, err = m.ds.Delete(ctx, handleKey(name), h.ResourceVersion)
			if datastore.IsNotFound(err) {
				err = nil
			}
		} else {
			_, err = m.ds.Update(ctx, h)
			if datastore.IsNotFound(err) {
				continue
			}
		}
		if datastore.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("update handle %q: %w", handleID, err)
		}
		return nil
	}
	return fmt.Errorf("update handle %q: %w", handleID, ErrTooManyRetries)
}

// createHandle creates handleID's record counting n addresses of block; it
// fails (wrapping datastore.ErrAlreadyExists) when the handle exists.
func (m *IPAM) createHandle(ctx context.Context, handleID string, block netip.Prefix, n int) error {
	nh := &v3.IPAMHandle{}
	nh.Name = handleName(handleID)
	nh.Spec = v3.IPAMHandleSpec{HandleID: handleID, Block: map[string]int{block.String(): n}}
	if _, err := m.ds.Create(ctx, nh); err != nil {
		return fmt.Errorf("create handle %q: %w", handleID, err)
	}
	return nil
}

func (m *IPAM) addToHandle(ctx context.Context, handleID string, block netip.Prefix, delta int) error {
	return m.adjustHandle(ctx, handleID, block, plus(delta), false)
}

// plus is the handle update that adds delta to the count.
func plus(delta int) func(int) int { return func(old int) int { return old + delta } }
