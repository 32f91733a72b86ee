package agent

import (
	"context"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The agent's locking, finer than one lock per node:
//
//   - Calls on one workload endpoint (AddWorkload, DelWorkload) or one IPAM
//     handle (AssignIPs, ReleaseIPs) are serialized by key. Two calls on the
//     same endpoint must not interleave their datastore write with their
//     dataplane intent (a DEL of an old sandbox recording "removed" after
//     the new sandbox's ADD recorded its route would hide the new route),
//     and two AssignIPs of one handle must not both find it empty and take
//     two sets of addresses.
//   - Calls on different keys run at once. What they share is made safe
//     elsewhere: every datastore write is a compare-and-swap, the ipam
//     package serializes the block writes of one node itself, and Felix
//     coalesces the dataplane intent of many endpoints into one apply. This
//     is what lets 30 pods started at once share a few applies instead of
//     queueing 30 of them one after another.
//   - GarbageCollect excludes everything else: it decides from one listing
//     which endpoints and handles are stale, which an ADD running meanwhile
//     could make untrue.
//
// Waiting gives up when the call's context ends, with DeadlineExceeded.

// gate admits many shared holders or one exclusive holder. A waiting
// exclusive holder keeps new shared holders out, so GC is not starved by a
// steady stream of pods.
type gate struct {
	mu          sync.Mutex
	shared      int
	exclusive   bool
	exclWaiting int
	changed     chan struct{} // closed and replaced whenever the state changes
}

func newGate() *gate { return &gate{changed: make(chan struct{})} }

// acquire waits for the gate and returns its release.
func (g *gate) acquire(ctx context.Context, exclusive bool) (func(), error) {
	waiting := false
	defer func() {
		if waiting {
			g.mu.Lock()
			g.exclWaiting--
			g.broadcastLocked()
			g.mu.Unlock()
		}
	}()
	for {
		g.mu.Lock()
		switch {
		case exclusive && !g.exclusive && g.shared == 0:
			g.exclusive = true
			if waiting {
				g.exclWaiting--
				waiting = false
			}
			g.mu.Unlock()
			return g.releaseFunc(true), nil
		case !exclusive && !g.exclusive && g.exclWaiting == 0:
			g.shared++
			g.mu.Unlock()
			return g.releaseFunc(false), nil
		}
		if exclusive && !waiting {
			g.exclWaiting++
			waiting = true
		}
		ch := g.changed
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, lockTimeout(ctx)
		}
	}
}

func (g *gate) releaseFunc(exclusive bool) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if exclusive {
				g.exclusive = false
			} else {
				g.shared--
			}
			g.broadcastLocked()
		})
	}
}

func (g *gate) broadcastLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// keyLocks is a set of mutexes by key, each made when first needed and
// forgotten when nobody holds or waits for it.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	ch    chan struct{} // one slot: the holder
	users int           // holders and waiters
}

func newKeyLocks() *keyLocks { return &keyLocks{locks: map[string]*keyLock{}} }

// acquire waits for key's lock and returns its release.
func (k *keyLocks) acquire(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	l, ok := k.locks[key]
	if !ok {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()
	done := func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if l.users--; l.users == 0 {
			delete(k.locks, key)
		}
	}
	select {
	case l.ch <- struct{}{}:
		var once sync.Once
		return func() {
			once.Do(func() {
				<-l.ch
				done()
			})
		}, nil
	case <-ctx.Done():
		done()
		return nil, lockTimeout(ctx)
	}
}

func lockTimeout(ctx context.Context) error {
	return status.Errorf(codes.DeadlineExceeded, "waited for the agent's lock until the call ended: %v (the agent is busy with the same pod or a garbage collection, or a datastore call is slow)", ctx.Err())
}

// lock takes the gate (shared) and the key's lock, in that order
// everywhere, and returns one release for both.
func (s *Server) lock(ctx context.Context, key string) (func(), error) {
	releaseGate, err := s.gate.acquire(ctx, false)
	if err != nil {
		return nil, err
	}
	releaseKey, err := s.keys.acquire(ctx, key)
	if err != nil {
		releaseGate()
		return nil, err
	}
	return func() { releaseKey(); releaseGate() }, nil
}

// lockAll takes the gate exclusively: no other call holds any lock then.
func (s *Server) lockAll(ctx context.Context) (func(), error) {
	return s.gate.acquire(ctx, true)
}

// Lock keys: one namespace per kind of thing locked.
func endpointLockKey(namespace, name string) string { return "endpoint/" + namespace + "/" + name }
func handleLockKey(handle string) string {
	return "handle/" + strings.ToLower(handle) // the ipam package lower-cases handle record names
}

// pendingHandles remembers the handles AssignIPs gave addresses to whose
// AddWorkload (or ReleaseIPs) has not come yet: the ADDs in flight between
// their two calls, which hold no lock then, so GC must not take their
// addresses (workloads.go).
type pendingHandles struct {
	mu    sync.Mutex
	since map[string]time.Time // by handleLockKey
}

func (s *Server) startPending(handle string) {
	s.pending.mu.Lock()
	defer s.pending.mu.Unlock()
	if s.pending.since == nil {
		s.pending.since = map[string]time.Time{}
	}
	s.pending.since[handleLockKey(handle)] = time.Now()
}

func (s *Server) donePending(handle string) {
	s.pending.mu.Lock()
	defer s.pending.mu.Unlock()
	delete(s.pending.since, handleLockKey(handle))
}

// inFlight reports whether handle is in flight; entries older than
// pendingMaxAge (an ADD that died) are forgotten.
func (s *Server) inFlight(handle string) bool {
	s.pending.mu.Lock()
	defer s.pending.mu.Unlock()
	k := handleLockKey(handle)
	t, ok := s.pending.since[k]
	if ok && time.Since(t) >= pendingMaxAge {
		delete(s.pending.since, k)
		return false
	}
	return ok
}
