package felix_test

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/tabbynet/tabby/bgp"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
	"github.com/tabbynet/tabby/felix"
)

// routeFeed is the BGP side of Felix as its contract states it
// (felix.RemoteRouteSource): deltas for one consumer and a sync signal.
// bgp/controller implements the same contract over a real speaker; its
// own tests and the node's netns tests cover that end.
type routeFeed struct {
	mu      sync.Mutex
	routes  map[netip.Prefix]bgp.Route
	pending map[netip.Prefix]bool
	signal  chan struct{}
	synced  chan struct{}
}

func newRouteFeed() *routeFeed {
	return &routeFeed{routes: map[netip.Prefix]bgp.Route{}, pending: map[netip.Prefix]bool{},
		signal: make(chan struct{}, 1), synced: make(chan struct{})}
}

func (f *routeFeed) set(prefix, nextHop string) {
	f.mu.Lock()
	p := netip.MustParsePrefix(prefix)
	f.routes[p] = bgp.Route{Prefix: p, NextHop: netip.MustParseAddr(nextHop)}
	f.pending[p] = true
	f.mu.Unlock()
	f.notify()
}

func (f *routeFeed) withdraw(prefix string) {
	f.mu.Lock()
	p := netip.MustParsePrefix(prefix)
	delete(f.routes, p)
	f.pending[p] = true
	f.mu.Unlock()
	f.notify()
}

func (f *routeFeed) notify() {
	select {
	case f.signal <- struct{}{}:
	default:
	}
}

func (f *routeFeed) RouteChanges() <-chan struct{} { return f.signal }
func (f *routeFeed) Synced() <-chan struct{}       { return f.synced }
func (f *routeFeed) TakeRouteChanges() (changed []bgp.Route, withdrawn []netip.Prefix) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p := range f.pending {
		if r, ok := f.routes[p]; ok {
			changed = append(changed, r)
		} else {
			withdrawn = append(withdrawn, p)
		}
	}
	clear(f.pending)
	return changed, withdrawn
}

// Felix programs learned routes, keeps the previous run's remote routes
// until BGP's initial sync, then prunes the ones not learned again; a
// learned route never displaces a local block.
func TestRemoteRoutesFromBGP(t *testing.T) {
	ds := etcdtest.NewStore(t)
	create(t, ds, affinity("n1", "10.65.0.0/26"))
	feed := newRouteFeed()
	n := newFakeNode(t, ds, felix.Config{RemoteRoutes: feed})
	// The node's subnet, and what the previous run of the agent left.
	for _, r := range []string{
		"192.168.0.0/24 dev eth0 proto kernel scope link",
		"10.65.5.0/26 via 192.168.0.9 dev eth0 proto 98",
		"10.65.7.0/26 via 192.168.0.7 dev eth0 proto 98",
	} {
		if err := n.k.AddRoute(r); err != nil {
			t.Fatal(err)
		}
	}
	runFelix(t, n.f)
	waitInSync(t, n.f)
	n.waitRoutes(t, "previous remote routes kept while BGP syncs",
		"192.168.0.0/24 dev eth0 proto kernel scope link",
		"blackhole 10.65.0.0/26 proto 98",
		"10.65.5.0/26 via 192.168.0.9 dev eth0 proto 98",
		"10.65.7.0/26 via 192.168.0.7 dev eth0 proto 98",
	)

	feed.set("10.65.5.0/26", "192.168.0.9") // learned again
	feed.set("10.65.6.0/26", "192.168.0.8")
	feed.set("10.65.0.0/26", "192.168.0.66") // our own block: local wins
	feed.set("0.0.0.0/0", "192.168.0.1")     // a ToR's default route
	n.waitRoutes(t, "learned routes added",
		"192.168.0.0/24 dev eth0 proto kernel scope link",
		"blackhole 10.65.0.0/26 proto 98",
		"10.65.5.0/26 via 192.168.0.9 dev eth0 proto 98",
		"10.65.6.0/26 via 192.168.0.8 dev eth0 proto 98",
		"10.65.7.0/26 via 192.168.0.7 dev eth0 proto 98",
		"default via 192.168.0.1 dev eth0 proto 98",
	)

	close(feed.synced)
	feed.notify()
	n.waitRoutes(t, "not re-learned route pruned after the sync",
		"192.168.0.0/24 dev eth0 proto kernel scope link",
		"blackhole 10.65.0.0/26 proto 98",
		"10.65.5.0/26 via 192.168.0.9 dev eth0 proto 98",
		"10.65.6.0/26 via 192.168.0.8 dev eth0 proto 98",
		"default via 192.168.0.1 dev eth0 proto 98",
	)

	feed.withdraw("10.65.6.0/26")
	feed.set("10.65.5.0/26", "192.168.0.10") // moved
	n.waitRoutes(t, "withdrawal and next-hop change",
		"192.168.0.0/24 dev eth0 proto kernel scope link",
		"blackhole 10.65.0.0/26 proto 98",
		"10.65.5.0/26 via 192.168.0.10 dev eth0 proto 98",
		"default via 192.168.0.1 dev eth0 proto 98",
	)
}
