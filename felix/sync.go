package felix

import (
	"context"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/syncer"
)

// syncedKinds are the resources the workload dataplane is computed from.
var syncedKinds = []string{"WorkloadEndpoint", "BlockAffinity"}

// update is a syncer update reduced to what Felix uses.
type update struct {
	key      v3.Key
	deleted  bool
	resource v3.Resource // nil when deleted
}

// callbacks adapts the syncer's interface to Felix's handlers, which only
// record intent and signal the loop.
type callbacks struct{ f *Felix }

func (c callbacks) OnUpdates(us []syncer.Update) {
	out := make([]update, 0, len(us))
	for _, u := range us {
		out = append(out, update{key: u.Key, deleted: u.Type == datastore.Deleted, resource: u.Resource})
	}
	c.f.onUpdates(out)
}

func (c callbacks) OnInSync() { c.f.onInSync() }

func (f *Felix) runSyncer(ctx context.Context) error {
	syncer.New(f.ds, syncedKinds, callbacks{f}, f.log.With("component", "syncer")).Run(ctx)
	return ctx.Err()
}
