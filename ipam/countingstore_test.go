package ipam

import (
	"context"
	"sync/atomic"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

// countingStore counts the requests that reach a real datastore, so a
// benchmark can report datastore round trips per allocation next to its
// rate, and a test can assert that a path needs no more than it should.
type countingStore struct {
	datastore.Interface
	reads, writes, conflicts atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, key v3.Key) (v3.Resource, error) {
	c.reads.Add(1)
	return c.Interface.Get(ctx, key)
}

func (c *countingStore) List(ctx context.Context, kind, namespace string) (datastore.ListResult, error) {
	c.reads.Add(1)
	return c.Interface.List(ctx, kind, namespace)
}

func (c *countingStore) Create(ctx context.Context, r v3.Resource) (v3.Resource, error) {
	return c.wrote(c.Interface.Create(ctx, r))
}

func (c *countingStore) Update(ctx context.Context, r v3.Resource) (v3.Resource, error) {
	return c.wrote(c.Interface.Update(ctx, r))
}

func (c *countingStore) Delete(ctx context.Context, key v3.Key, rv string) (v3.Resource, error) {
	return c.wrote(c.Interface.Delete(ctx, key, rv))
}

func (c *countingStore) wrote(r v3.Resource, err error) (v3.Resource, error) {
	c.writes.Add(1)
	if datastore.IsConflict(err) || datastore.IsAlreadyExists(err) {
		c.conflicts.Add(1)
	}
	return r, err
}

func (c *countingStore) reset() {
	c.reads.Store(0)
	c.writes.Store(0)
	c.conflicts.Store(0)
}
