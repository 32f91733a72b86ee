package syncer

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

// Update is one change delivered to the consumer.
type Update struct {
	Type     datastore.EventType // Added, Modified or Deleted
	Key      v3.Key
	Resource v3.Resource // nil on Deleted
}

// Callbacks receive the syncer's output. Both methods are called from one
// goroutine, in order, never concurrently, and must return quickly: record the
// intent (update an index, mark something dirty, signal a loop) and do the
// real work elsewhere. A slow callback stalls every kind's stream.
//
// The Resources handed over belong to the consumer.
type Callbacks interface {
	// OnUpdates delivers changes. Updates of one kind come in datastore
	// order; updates of different kinds are not ordered with respect to each
	// other.
	OnUpdates([]Update)
	// OnInSync is called exactly once, after the first complete snapshot of
	// every kind has been delivered. Consumers must not act on partial data
	// (e.g. prune dataplane state) before it.
	OnInSync()
}

// Backoff bounds between a failure and the next list.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// maxCoalesce caps how many updates one OnUpdates call carries when
	// several are ready at once.
	maxCoalesce = 1000
)

// Syncer is a list-then-watch cache of several kinds.
type Syncer struct {
	ds    datastore.Interface
	kinds []string
	cb    Callbacks
	log   *slog.Logger

	minBackoff, maxBackoff time.Duration
	// onRelist, when set (by tests), is called from a kind's goroutine each
	// time it lists again after a failed list or a broken watch.
	onRelist func(kind string, cause error)
}

// New returns a syncer of the given kinds (Kind names, e.g. "IPPool").
// Duplicate kinds are ignored. An unknown kind never lists, so the syncer never
// reports being in sync and logs the error at every retry.
func New(ds datastore.Interface, kinds []string, cb Callbacks, log *slog.Logger) *Syncer {
	seen := map[string]bool{}
	var ks []string
	for _, k := range kinds {
		if !seen[k] {
			seen[k] = true
			ks = append(ks, k)
		}
	}
	return &Syncer{ds: ds, kinds: ks, cb: cb, log: log, minBackoff: minBackoff, maxBackoff: maxBackoff}
}

// batch is what a kind's goroutine hands to the dispatcher.
type batch struct {
	kind     string
	updates  []Update
	snapshot bool // the kind's first complete list
}

// Run lists and watches until ctx is done. It returns only after every
// goroutine it started has exited, and calls no callback after returning.
// Call it once per Syncer.
func (s *Syncer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait() // runs after cancel below
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan batch)
	for _, kind := range s.kinds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runKind(ctx, kind, batches)
		}()
	}

	pending := len(s.kinds) // kinds whose first snapshot is still missing
	if pending == 0 {
		s.cb.OnInSync()
	}
	for {
		var b batch
		select {
		case <-ctx.Done():
			return
		case b = <-batches:
		}
		updates := b.updates
		if b.snapshot {
			pending--
		}
		// Hand over whatever else is ready in one call: consumers usually
		// do a fixed amount of work per call.
	drain:
		for len(updates) < maxCoalesce {
			select {
			case more := <-batches:
				updates = append(updates, more.updates...)
				if more.snapshot {
					pending--
				}
			default:
				break drain
			}
		}
		if len(updates) > 0 {
			s.cb.OnUpdates(updates)
		}
		if pending == 0 {
			pending = -1 // once
			s.log.Info("datastore in sync", "kinds", s.kinds)
			s.cb.OnInSync()
		}
	}
}

// runKind is one kind's list-then-watch loop. cache maps each key the
// consumer has been told about to the resourceVersion it was told; it is what
// lets a re-list deliver only the difference.
func (s *Syncer) runKind(ctx context.Context, kind string, out chan<- batch) {
	log := s.log.With("kind", kind)
	cache := map[v3.Key]string{}
	first := true
	delay := s.minBackoff
	var cause error // why we are listing again; nil the first time
	for {
		if cause != nil && s.onRelist != nil {
			s.onRelist(kind, cause)
		}
		list, err := s.ds.List(ctx, kind, "")
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("list failed; will retry", "error", err, "retryIn", delay)
			if !sleep(ctx, delay) {
				return
			}
			delay = s.grow(delay)
			cause = err
			continue
		}
		updates := diff(cache, list.Items)
		if cause != nil && len(updates) > 0 {
			log.Info("re-listed after a failure; delivering the difference", "updates", len(updates), "revision", list.Revision)
		}
		select {
		case out <- batch{kind: kind, updates: updates, snapshot: first}:
		case <-ctx.Done():
			return
		}
		first = false

		started := time.Now()
		err = s.watch(ctx, kind, list.Revision, cache, out)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) >= s.maxBackoff {
			// The watch was healthy for a while: this is a new incident,
			// not the next failure of a loop.
			delay = s.minBackoff
		}
		if errors.Is(err, datastore.ErrCompacted) {
			log.Info("watch history compacted; re-listing", "error", err, "retryIn", delay)
		} else {
			log.Warn("watch failed; re-listing", "error", err, "retryIn", delay)
		}
		if !sleep(ctx, delay) {
			return
		}
		delay = s.grow(delay)
		cause = err
	}
}

// watch follows one kind from rev, keeping cache current, until the watch
// fails (the error says why) or ctx ends.
func (s *Syncer) watch(ctx context.Context, kind, rev string, cache map[v3.Key]string, out chan<- batch) error {
	w, err := s.ds.Watch(ctx, kind, "", rev)
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		var ev datastore.Event
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok = <-w.ResultChan():
		}
		if !ok {
			return errors.New("watch ended without an error")
		}
		var u Update
		switch ev.Type {
		case datastore.WatchError:
			return ev.Err
		case datastore.Added, datastore.Modified:
			key := v3.KeyOf(ev.Object)
			// Typed by what the consumer knows, so Added always means new
			// to the consumer and Modified always replaces something.
			t := datastore.Added
			if _, known := cache[key]; known {
				t = datastore.Modified
			}
			cache[key] = ev.Object.GetResourceVersion()
			u = Update{Type: t, Key: key, Resource: ev.Object}
		case datastore.Deleted:
			key := v3.KeyOf(ev.Object)
			if _, known := cache[key]; !known {
				continue // the consumer never saw it
			}
			delete(cache, key)
			u = Update{Type: datastore.Deleted, Key: key}
		default:
			continue
		}
		select {
		case out <- batch{kind: kind, updates: []Update{u}}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// diff brings cache to the listed state and returns the updates that tell a
// consumer who saw cache the same: Added for new keys, Modified for changed
// versions, Deleted for keys that vanished, in key order.
func diff(cache map[v3.Key]string, items []v3.Resource) []Update {
	var out []Update
	listed := make(map[v3.Key]bool, len(items))
	for _, r := range items {
		key := v3.KeyOf(r)
		listed[key] = true
		old, known := cache[key]
		switch {
		case !known:
			out = append(out, Update{Type: datastore.Added, Key: key, Resource: r})
		case old != r.GetResourceVersion():
			out = append(out, Update{Type: datastore.Modified, Key: key, Resource: r})
		default:
			continue
		}
		cache[key] = r.GetResourceVersion()
	}
	var gone []v3.Key
	for key := range cache {
		if !listed[key] {
			gone = append(gone, key)
		}
	}
	sort.Slice(gone, func(i, j int) bool {
		if gone[i].Namespace != gone[j].Namespace {
			return gone[i].Namespace < gone[j].Namespace
		}
		return gone[i].Name < gone[j].Name
	})
	for _, key := range gone {
		delete(cache, key)
		out = append(out, Update{Type: datastore.Deleted, Key: key})
	}
	return out
}

func (s *Syncer) grow(d time.Duration) time.Duration {
	return min(2*d, s.maxBackoff)
}

// sleep waits d, stretched by up to a fifth so that many nodes recovering
// from the same outage do not list in lockstep, or until ctx ends; it reports
// whether to carry on.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d + rand.N(d/5+1))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
