package controller

import (
	"context"
	"net/netip"
	"sync"

	"github.com/tabbynet/tabby/bgp"
)

// relay hands learned routes to one consumer (Felix) across speaker
// restarts. The first speaker's changes pass straight through. A later
// speaker (after an identity change) starts empty, so its routes are staged
// until it reports its initial sync and only then replace what the
// consumer has: a speaker restart never withdraws a route that is still
// there.
type relay struct {
	mu      sync.Mutex
	told    map[netip.Prefix]bgp.Route // the consumer's view, once it takes
	pending map[netip.Prefix]bool
	self    map[netip.Addr]bool // this node's addresses: never a next hop
	signal  chan struct{}
	synced  chan struct{}
	closed  bool
}

func newRelay() *relay {
	return &relay{
		told:    map[netip.Prefix]bgp.Route{},
		pending: map[netip.Prefix]bool{},
		self:    map[netip.Addr]bool{},
		signal:  make(chan struct{}, 1),
		synced:  make(chan struct{}),
	}
}

func (r *relay) setSelf(addrs ...netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.self)
	for _, a := range addrs {
		if a.IsValid() {
			r.self[a] = true
		}
	}
}

// follow relays sp's routes until ctx ends. first says sp is the first
// speaker of this process.
func (r *relay) follow(ctx context.Context, sp bgp.Speaker, first bool) {
	var staging map[netip.Prefix]bgp.Route
	if !first {
		staging = map[netip.Prefix]bgp.Route{}
	}
	synced := sp.Synced()
	take := func() {
		changed, withdrawn := sp.TakeRouteChanges()
		if staging == nil {
			r.apply(changed, withdrawn)
			return
		}
		for _, p := range withdrawn {
			delete(staging, p)
		}
		for _, rt := range changed {
			staging[rt.Prefix] = rt
		}
	}
	take()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sp.RouteChanges():
			take()
		case <-synced:
			synced = nil
			take()
			if staging != nil {
				r.replace(staging)
				staging = nil
			}
			r.markSynced()
		}
	}
}

func (r *relay) apply(changed []bgp.Route, withdrawn []netip.Prefix) {
	r.mu.Lock()
	for _, p := range withdrawn {
		if _, ok := r.told[p]; ok {
			delete(r.told, p)
			r.pending[p] = true
		}
	}
	for _, rt := range changed {
		r.setLocked(rt)
	}
	n := len(r.pending)
	r.mu.Unlock()
	if n > 0 {
		r.notify()
	}
}

// setLocked records rt, unless its next hop is this node: such a path
// (our own advertisement reflected back, or a hijack) must never become a
// kernel route.
func (r *relay) setLocked(rt bgp.Route) {
	if r.self[rt.NextHop] {
		if _, ok := r.told[rt.Prefix]; ok {
			delete(r.told, rt.Prefix)
			r.pending[rt.Prefix] = true
		}
		return
	}
	if old, ok := r.told[rt.Prefix]; ok && old == rt {
		return
	}
	r.told[rt.Prefix] = rt
	r.pending[rt.Prefix] = true
}

func (r *relay) replace(all map[netip.Prefix]bgp.Route) {
	r.mu.Lock()
	for p := range r.told {
		if _, ok := all[p]; !ok {
			delete(r.told, p)
			r.pending[p] = true
		}
	}
	for _, rt := range all {
		r.setLocked(rt)
	}
	n := len(r.pending)
	r.mu.Unlock()
	if n > 0 {
		r.notify()
	}
}

func (r *relay) notify() {
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func (r *relay) markSynced() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.synced)
	}
}

func (r *relay) take() (changed []bgp.Route, withdrawn []netip.Prefix) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p := range r.pending {
		if rt, ok := r.told[p]; ok {
			changed = append(changed, rt)
		} else {
			withdrawn = append(withdrawn, p)
		}
	}
	clear(r.pending)
	return changed, withdrawn
}
