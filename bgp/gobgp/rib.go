package gobgp

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	tbgp "github.com/tabbynet/tabby/bgp"
)

// rib is the learned-route map: best paths learned from peers, fed by
// GoBGP's best-path watch, plus the changes not yet taken by the consumer.
type rib struct {
	mu      sync.Mutex
	routes  map[netip.Prefix]tbgp.Route
	pending map[netip.Prefix]bool // prefix changed since last take; value unused
	taken   bool                  // the consumer has taken at least once
	signal  chan struct{}
	// suspect holds differences the last resync scan found, keyed by
	// prefix; a second scan that finds the same difference repairs it.
	suspect map[netip.Prefix]suspectEntry
	// gen counts best-path events, learned or originated, and repairs
	// (route counts depend on them).
	gen atomic.Uint64
}

type suspectEntry struct {
	route   tbgp.Route
	present bool
}

func newRIB() *rib {
	return &rib{
		routes:  map[netip.Prefix]tbgp.Route{},
		pending: map[netip.Prefix]bool{},
		signal:  make(chan struct{}, 1),
		suspect: map[netip.Prefix]suspectEntry{},
	}
}

// routeOf converts a GoBGP path; ok is false for anything that is not an
// IPv4/IPv6 unicast path learned from a peer.
func routeOf(p *apiutil.Path) (r tbgp.Route, learned bool, ok bool) {
	if p.Family != bgp.RF_IPv4_UC && p.Family != bgp.RF_IPv6_UC {
		return r, false, false
	}
	n, isPrefix := p.Nlri.(*bgp.IPAddrPrefix)
	if !isPrefix {
		return r, false, false
	}
	r.Prefix = n.Prefix.Masked()
	if !p.PeerAddress.IsValid() {
		// Locally originated: it is ours, not learned.
		return r, false, true
	}
	r.Peer, r.PeerASN = p.PeerAddress.Unmap(), p.PeerASN
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			r.NextHop = a.Value
		case *bgp.PathAttributeMpReachNLRI:
			r.NextHop = a.Nexthop
		}
	}
	r.NextHop = r.NextHop.Unmap()
	return r, true, true
}

// onBestPath is GoBGP's best-path callback. It only records: GoBGP's
// watch queue is unbounded, so time spent here is memory.
func (m *rib) onBestPath(paths []*apiutil.Path, _ time.Time) {
	m.gen.Add(1)
	m.mu.Lock()
	changed := false
	for _, p := range paths {
		r, learned, ok := routeOf(p)
		if !ok {
			continue
		}
		if p.Withdrawal || !learned || !r.NextHop.IsValid() {
			// Withdrawn, or our own path is now the best: nothing learned.
			// (continue, not return: the rest of the batch still counts.)
			if _, had := m.routes[r.Prefix]; had {
				delete(m.routes, r.Prefix)
				m.pending[r.Prefix] = true
				changed = true
			}
			continue
		}
		if old, had := m.routes[r.Prefix]; had && old == r {
			continue
		}
		m.routes[r.Prefix] = r
		m.pending[r.Prefix] = true
		changed = true
	}
	m.mu.Unlock()
	if changed {
		m.notify()
	}
}

func (m *rib) notify() {
	select {
	case m.signal <- struct{}{}:
	default:
	}
}

func (m *rib) snapshot() []tbgp.Route {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]tbgp.Route, 0, len(m.routes))
	for _, r := range m.routes {
		out = append(out, r)
	}
	return out
}

// take returns the changes since the previous take; the first take
// returns everything.
func (m *rib) take() (changed []tbgp.Route, withdrawn []netip.Prefix) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.taken {
		m.taken = true
		clear(m.pending)
		changed = make([]tbgp.Route, 0, len(m.routes))
		for _, r := range m.routes {
			changed = append(changed, r)
		}
		return changed, nil
	}
	for p := range m.pending {
		if r, ok := m.routes[p]; ok {
			changed = append(changed, r)
		} else {
			withdrawn = append(withdrawn, p)
		}
	}
	clear(m.pending)
	return changed, withdrawn
}

// resync compares the map with GoBGP's Loc-RIB. Events still queued in
// GoBGP's watcher make a scan look different from the map for a moment,
// so a difference is only repaired when the next scan finds it again,
// unchanged.
func (m *rib) resync(ctx context.Context, srv *server.BgpServer, log *slog.Logger) {
	if srv == nil || ctx.Err() != nil {
		return
	}
	truth := map[netip.Prefix]tbgp.Route{}
	for _, f := range []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC} {
		err := srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: f}, func(_ bgp.NLRI, paths []*apiutil.Path) {
			for _, p := range paths {
				if !p.Best {
					continue
				}
				if r, learned, ok := routeOf(p); ok && learned && !p.Withdrawal && r.NextHop.IsValid() {
					truth[r.Prefix] = r
				}
				break
			}
		})
		if err != nil {
			log.Warn("scan BGP Loc-RIB", "family", familyName(f), "error", err)
			return
		}
	}

	m.mu.Lock()
	diffs := map[netip.Prefix]suspectEntry{}
	for p, r := range truth {
		if cur, ok := m.routes[p]; !ok || cur != r {
			diffs[p] = suspectEntry{route: r, present: true}
		}
	}
	for p := range m.routes {
		if _, ok := truth[p]; !ok {
			diffs[p] = suspectEntry{}
		}
	}
	repaired := 0
	for p, d := range diffs {
		if prev, ok := m.suspect[p]; !ok || prev != d {
			continue
		}
		if d.present {
			m.routes[p] = d.route
		} else {
			delete(m.routes, p)
		}
		m.pending[p] = true
		repaired++
		delete(diffs, p)
	}
	m.suspect = diffs
	m.mu.Unlock()
	if repaired > 0 {
		m.gen.Add(1)
		log.Warn("learned BGP routes drifted from GoBGP's table; repaired", "routes", repaired)
		m.notify()
	}
}
