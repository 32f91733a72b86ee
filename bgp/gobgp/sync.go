package gobgp

import (
	"net/netip"
	"sync"
	"time"

	"github.com/tabbynet/tabby/bgp"
)

// syncTracker decides when the initial sync is over: every peer of the
// first known peer set has finished its initial table (see
// peerTracker.initialSyncDone), or the timeout has passed. Peers added
// later do not count: the point is to know when routes that were in the
// kernel before a restart have had their chance to be re-learned.
type syncTracker struct {
	done chan struct{}

	mu       sync.Mutex
	closed   bool
	expected []netip.Addr
	known    bool // the first peer set has been seen
	timer    *time.Timer
}

func newSyncTracker() *syncTracker { return &syncTracker{done: make(chan struct{})} }

func (t *syncTracker) start(timeout time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.timer = time.AfterFunc(timeout, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.closeLocked()
	})
}

func (t *syncTracker) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer != nil {
		t.timer.Stop()
	}
}

// setExpected records the first peer set; later calls are ignored. Peers
// that cannot be configured (ConfigError) are not waited for.
func (t *syncTracker) setExpected(peers []bgp.PeerConfig) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.known {
		return
	}
	t.known = true
	for _, p := range peers {
		if p.ConfigError == "" {
			t.expected = append(t.expected, p.Address)
		}
	}
}

func (t *syncTracker) check(peers *peerTracker) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || !t.known {
		return
	}
	for _, a := range t.expected {
		if !peers.initialSyncDone(a) {
			return
		}
	}
	t.closeLocked()
}

func (t *syncTracker) closeLocked() {
	if !t.closed {
		t.closed = true
		close(t.done)
		if t.timer != nil {
			t.timer.Stop()
		}
	}
}
