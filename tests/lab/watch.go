package lab

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RouteEvent is one change of a watched route, as the kernel announced it.
type RouteEvent struct {
	At      time.Time
	Deleted bool
	Dst     netip.Prefix
	Via     netip.Addr
}

// RouteWatch follows the IPv4 main-table routes of one protocol in a
// namespace through netlink notifications, so that "all 100,000 routes are
// in" is seen the moment the last one lands, without dumping the table in
// a loop (a dump of 100k routes takes the CPU the daemon under test
// needs). If the kernel drops notifications (socket buffer overrun) the
// watch says so (Lost) and counts fall back to dumps.
type RouteWatch struct {
	ns     *NetNS
	proto  netlink.RouteProtocol
	record bool

	mu      sync.Mutex
	set     map[netip.Prefix]struct{}
	events  []RouteEvent
	lost    error
	changed chan struct{}
	done    chan struct{}
	closed  sync.Once
}

// watchBuffer is the notification socket's receive buffer: room for the
// bursts of a 100k-route table (about 100 bytes a message).
const watchBuffer = 64 << 20

// WatchRoutes starts watching routes of protocol proto in n; with record,
// every change is kept for Events.
func (n *NetNS) WatchRoutes(proto int, record bool) (*RouteWatch, error) {
	w := &RouteWatch{
		ns:      n,
		proto:   netlink.RouteProtocol(proto),
		record:  record,
		set:     map[netip.Prefix]struct{}{},
		changed: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	ch := make(chan netlink.RouteUpdate, 4096)
	h := netns.NsHandle(n.ns.Fd())
	err := netlink.RouteSubscribeWithOptions(ch, w.done, netlink.RouteSubscribeOptions{
		Namespace:              &h,
		ReceiveBufferSize:      watchBuffer,
		ReceiveBufferForceSize: true,
		ErrorCallback: func(err error) {
			w.mu.Lock()
			if w.lost == nil {
				w.lost = err
			}
			w.mu.Unlock()
			w.signal()
		},
	})
	if err != nil {
		return nil, fmt.Errorf("watch routes in %s: %w", n.Name, err)
	}
	// Seed with what is there now; the subscription is already open, so
	// nothing that changes from here on is missed.
	existing, err := n.Routes(proto)
	if err != nil {
		w.Close()
		return nil, err
	}
	for _, r := range existing {
		w.set[r.Dst] = struct{}{}
	}
	go w.run(ch)
	return w, nil
}

func (w *RouteWatch) run(ch <-chan netlink.RouteUpdate) {
	for u := range ch {
		if u.Protocol != w.proto || (u.Table != 0 && u.Table != unix.RT_TABLE_MAIN) || u.Family != netlink.FAMILY_V4 {
			continue
		}
		dst := prefixOf(u.Dst)
		del := u.Type == unix.RTM_DELROUTE
		w.mu.Lock()
		if del {
			delete(w.set, dst)
		} else {
			w.set[dst] = struct{}{}
		}
		if w.record {
			ev := RouteEvent{At: time.Now(), Deleted: del, Dst: dst}
			if g, ok := netip.AddrFromSlice(u.Gw); ok {
				ev.Via = g.Unmap()
			}
			w.events = append(w.events, ev)
		}
		w.mu.Unlock()
		w.signal()
	}
}

func (w *RouteWatch) signal() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// Lost is the error that ended the notifications, if any: counts are then
// read by dumping the table and Events is incomplete.
func (w *RouteWatch) Lost() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lost
}

// Count is how many routes of the protocol the namespace holds.
func (w *RouteWatch) Count() (int, error) {
	w.mu.Lock()
	lost, n := w.lost, len(w.set)
	w.mu.Unlock()
	if lost != nil {
		return w.ns.CountRoutes(int(w.proto))
	}
	return n, nil
}

// Events returns the recorded changes so far.
func (w *RouteWatch) Events() []RouteEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]RouteEvent(nil), w.events...)
}

// WaitCount waits until the count satisfies cond and returns when it first
// did (the time the notification was handled; with a lost watch, the time
// of the dump that showed it).
func (w *RouteWatch) WaitCount(ctx context.Context, cond func(int) bool) (time.Time, int, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		n, err := w.Count()
		if err != nil {
			return time.Time{}, n, err
		}
		if cond(n) {
			return time.Now(), n, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, n, fmt.Errorf("routes of protocol %d in %s: %d so far: %w", w.proto, w.ns.Name, n, ctx.Err())
		case <-w.changed:
		case <-tick.C:
		}
	}
}

// Close stops watching.
func (w *RouteWatch) Close() {
	w.closed.Do(func() { close(w.done) })
}
