package etcd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

// watchBuffer decouples the etcd stream from a briefly busy consumer.
const watchBuffer = 64

// Watch implements datastore.Interface.
//
// Events carry the revision of the change in Revision; the Object of a
// Deleted event is the last stored state, with that state's resourceVersion.
// A consumer that resumes after the last event it saw passes that event's
// Revision as fromRevision.
//
// While the connection to etcd breaks and comes back, the etcd client resumes
// the watch where it stopped; if that point has been compacted meanwhile, the
// watch ends with a WatchError wrapping datastore.ErrCompacted.
func (s *Store) Watch(ctx context.Context, kind, namespace, fromRevision string) (datastore.Watcher, error) {
	const op = "watch"
	key := v3.Key{Kind: kind, Namespace: namespace}
	ki, prefix, err := listPrefix(kind, namespace)
	if err != nil {
		return nil, errorf(op, key, err)
	}
	if s.closed.Load() {
		return nil, errorf(op, key, errClosed)
	}
	var start int64
	if fromRevision != "" {
		rev, err := strconv.ParseInt(fromRevision, 10, 64)
		if err != nil || rev < 0 {
			return nil, errorf(op, key, fmt.Errorf("revision %q is not an etcd revision (a decimal number)", fromRevision))
		}
		start = rev + 1
	} else {
		// "From now" is pinned to the revision at this call, which also
		// reports an unreachable cluster here rather than as a silent watch.
		rctx, cancel := s.request(ctx)
		resp, err := s.client.Get(rctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		cancel()
		if err != nil {
			return nil, s.fail(ctx, op, key, err)
		}
		start = resp.Header.Revision + 1
	}

	wctx, cancel := context.WithCancel(ctx)
	// RequireLeader makes the server end the watch when its member loses the
	// leader (a partition), instead of leaving it silently stale.
	wch := s.client.Watch(clientv3.WithRequireLeader(wctx), prefix,
		clientv3.WithPrefix(), clientv3.WithRev(start), clientv3.WithPrevKV())
	w := &watcher{
		store:  s,
		ki:     ki,
		key:    key,
		ctx:    wctx,
		cancel: cancel,
		out:    make(chan datastore.Event, watchBuffer),
		done:   make(chan struct{}),
	}
	go w.run(wch)
	return w, nil
}

type watcher struct {
	store  *Store
	ki     v3.KindInfo
	key    v3.Key // kind and namespace watched, for errors
	ctx    context.Context
	cancel context.CancelFunc
	out    chan datastore.Event
	done   chan struct{}
	once   sync.Once
}

func (w *watcher) ResultChan() <-chan datastore.Event { return w.out }

// Stop ends the watch and waits until its goroutine has exited; the result
// channel is closed by then. It is safe to call more than once and from any
// goroutine.
func (w *watcher) Stop() {
	w.once.Do(w.cancel)
	<-w.done
}

func (w *watcher) run(wch clientv3.WatchChan) {
	defer close(w.done)
	defer close(w.out)
	defer w.cancel() // releases the etcd watch when it ends on its own
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case <-w.ctx.Done():
			return
		case resp, ok = <-wch:
		}
		if !ok {
			if w.ctx.Err() == nil {
				// The client was closed under the watch.
				w.fail(errors.New("etcd watch stream closed"))
			}
			return
		}
		if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			w.fail(fmt.Errorf("%w: etcd compacted history up to revision %d", datastore.ErrCompacted, resp.CompactRevision))
			return
		}
		if err := resp.Err(); err != nil {
			if w.ctx.Err() != nil {
				return
			}
			w.fail(w.store.cause(w.ctx, err))
			return
		}
		if resp.Canceled {
			if w.ctx.Err() == nil {
				w.fail(fmt.Errorf("etcd cancelled the watch: %s", resp.CancelReason))
			}
			return
		}
		for _, ev := range resp.Events {
			e, err := w.convert(ev)
			if err != nil {
				w.fail(err)
				return
			}
			if !w.send(e) {
				return
			}
		}
	}
}

func (w *watcher) send(e datastore.Event) bool {
	select {
	case w.out <- e:
		return true
	case <-w.ctx.Done():
		return false
	}
}

// fail delivers the final WatchError unless the watch was stopped meanwhile.
func (w *watcher) fail(err error) {
	w.send(datastore.Event{Type: datastore.WatchError, Err: &datastore.Error{Op: "watch", Key: w.key, Err: err}})
}

func (w *watcher) convert(ev *clientv3.Event) (datastore.Event, error) {
	path := string(ev.Kv.Key)
	key, ok := keyFromPath(w.ki, path)
	if !ok {
		return datastore.Event{}, fmt.Errorf("key %s is not a %s key", path, w.ki.Kind)
	}
	rev := formatRev(ev.Kv.ModRevision)
	switch ev.Type {
	case mvccpb.DELETE:
		obj := stub(w.ki, key, 0)
		if ev.PrevKv != nil {
			if r, err := decode(w.ki, path, ev.PrevKv.Value, ev.PrevKv.ModRevision); err == nil {
				obj = r
			} else {
				// The key is gone either way; consumers need the identity,
				// which the key gives.
				obj = stub(w.ki, key, ev.PrevKv.ModRevision)
			}
		}
		return datastore.Event{Type: datastore.Deleted, Object: obj, Revision: rev}, nil
	default:
		r, err := decode(w.ki, path, ev.Kv.Value, ev.Kv.ModRevision)
		if err != nil {
			return datastore.Event{}, err
		}
		t := datastore.Modified
		if ev.IsCreate() {
			t = datastore.Added
		}
		return datastore.Event{Type: t, Object: r, Revision: rev}, nil
	}
}
