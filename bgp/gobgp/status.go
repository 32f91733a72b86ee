package gobgp

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	tbgp "github.com/tabbynet/tabby/bgp"
)

// peerRec is what the speaker knows about one session beyond GoBGP's own
// ListPeer: when the state was entered and why it last went wrong.
type peerRec struct {
	state   string
	since   time.Time
	lastErr string
	// grFamilies are the families the peer promised End-of-RIB for (its
	// graceful-restart capability, within the session's families); eor
	// those it has sent. Both reset when the session goes down.
	grFamilies map[bgp.Family]bool
	eor        map[bgp.Family]bool
}

// peerTracker records session events. It is written from GoBGP's watch
// goroutine and its log calls, so every method is quick and locked.
type peerTracker struct {
	// stopping is set once the speaker stopped BGP itself (see Stop).
	stopping atomic.Bool

	// changed is the coalescing signal of Speaker.SessionChanges, and gen
	// counts those changes (route counts depend on sessions).
	changed chan struct{}
	gen     atomic.Uint64

	mu   sync.Mutex
	recs map[netip.Addr]*peerRec
	now  func() time.Time
}

func newPeerTracker() *peerTracker {
	return &peerTracker{recs: map[netip.Addr]*peerRec{}, now: time.Now, changed: make(chan struct{}, 1)}
}

func (t *peerTracker) notify() {
	t.gen.Add(1)
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// configured starts a fresh record for a peer just (re)configured.
func (t *peerTracker) configured(addr netip.Addr, configErr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.recs[addr] = &peerRec{state: tbgp.StateIdle, since: t.now(), lastErr: configErr}
	t.notify()
}

func (t *peerTracker) removed(addr netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.recs, addr)
	t.notify()
}

func (t *peerTracker) get(addr netip.Addr) (peerRec, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.recs[addr]
	if !ok {
		return peerRec{}, false
	}
	return *r, true
}

// stateChange records a session state change reported by GoBGP.
func (t *peerTracker) stateChange(addr netip.Addr, state string, reason string, grFamilies map[bgp.Family]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.recs[addr]
	if !ok {
		return // not (or no longer) ours
	}
	if r.state != state {
		r.state, r.since = state, t.now()
		t.notify()
	}
	switch {
	case state == tbgp.StateEstablished:
		r.lastErr = ""
		r.grFamilies, r.eor = grFamilies, map[bgp.Family]bool{}
	case reason != "":
		r.lastErr = reason
		r.grFamilies, r.eor = nil, nil
	default:
		r.grFamilies, r.eor = nil, nil
	}
}

// connectError records why an outgoing connection attempt failed.
func (t *peerTracker) connectError(addr netip.Addr, msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.recs[addr]; ok && r.state != tbgp.StateEstablished {
		r.lastErr = msg
	}
}

func (t *peerTracker) established(addr netip.Addr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.recs[addr]
	return ok && r.state == tbgp.StateEstablished
}

func (t *peerTracker) endOfRIB(addr netip.Addr, f bgp.Family) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.recs[addr]; ok && r.eor != nil {
		r.eor[f] = true
	}
}

// initialSyncDone reports whether the peer's initial table is complete:
// established, and End-of-RIB received for every family it negotiated
// graceful restart for. A peer without graceful restart promises no
// End-of-RIB, so being established is all one can wait for.
func (t *peerTracker) initialSyncDone(addr netip.Addr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.recs[addr]
	if !ok || r.state != tbgp.StateEstablished {
		return false
	}
	for f := range r.grFamilies {
		if !r.eor[f] {
			return false
		}
	}
	return true
}

func stateName(s bgp.FSMState) string {
	switch s {
	case bgp.BGP_FSM_CONNECT:
		return tbgp.StateConnect
	case bgp.BGP_FSM_ACTIVE:
		return tbgp.StateActive
	case bgp.BGP_FSM_OPENSENT:
		return tbgp.StateOpenSent
	case bgp.BGP_FSM_OPENCONFIRM:
		return tbgp.StateOpenConfirm
	case bgp.BGP_FSM_ESTABLISHED:
		return tbgp.StateEstablished
	default:
		return tbgp.StateIdle
	}
}

func apiStateName(s api.PeerState_SessionState) string {
	switch s {
	case api.PeerState_SESSION_STATE_CONNECT:
		return tbgp.StateConnect
	case api.PeerState_SESSION_STATE_ACTIVE:
		return tbgp.StateActive
	case api.PeerState_SESSION_STATE_OPENSENT:
		return tbgp.StateOpenSent
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return tbgp.StateOpenConfirm
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return tbgp.StateEstablished
	default:
		return tbgp.StateIdle
	}
}

// disconnectText turns GoBGP's disconnect reason into a short sentence.
func disconnectText(reason api.PeerState_DisconnectReason, msg string) string {
	switch reason {
	case api.PeerState_DISCONNECT_REASON_UNSPECIFIED, api.PeerState_DISCONNECT_REASON_DECONFIGURED:
		return ""
	case api.PeerState_DISCONNECT_REASON_NOTIFICATION_SENT:
		return "Notification sent: " + strings.TrimPrefix(msg, "notification-sent ")
	case api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED:
		return "Notification received: " + strings.TrimPrefix(msg, "notification-received ")
	case api.PeerState_DISCONNECT_REASON_HOLD_TIMER_EXPIRED:
		return "Hold timer expired"
	case api.PeerState_DISCONNECT_REASON_READ_FAILED:
		return "Connection closed by peer"
	case api.PeerState_DISCONNECT_REASON_WRITE_FAILED:
		return "Connection write failed"
	case api.PeerState_DISCONNECT_REASON_BAD_PEER_AS:
		return "Bad peer AS"
	case api.PeerState_DISCONNECT_REASON_INVALID_MSG:
		return "Invalid message"
	case api.PeerState_DISCONNECT_REASON_GRACEFUL_RESTART:
		return "Graceful restart"
	case api.PeerState_DISCONNECT_REASON_ADMIN_DOWN:
		return "Administratively down"
	case api.PeerState_DISCONNECT_REASON_HARD_RESET:
		return "Hard reset"
	default:
		// Timer expiries and new connections are the FSM moving on, not
		// errors: keep the last real error.
		return ""
	}
}

// onPeerUpdate is GoBGP's peer-state callback: record and return.
func (s *Speaker) onPeerUpdate(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE && ev.Type != apiutil.PEER_EVENT_INIT {
		return
	}
	st := ev.Peer.State
	addr := st.NeighborAddress.Unmap()
	state := stateName(st.SessionState)
	var gr map[bgp.Family]bool
	if state == tbgp.StateEstablished {
		gr = grFamilies(st.RemoteCap, addr)
	}
	s.peers.stateChange(addr, state, disconnectText(st.DisconnectReason, st.DisconnectMessage), gr)
	s.synced.check(s.peers)
}

// onEOR is GoBGP's End-of-RIB callback.
func (s *Speaker) onEOR(p *apiutil.Path, _ time.Time) {
	s.peers.endOfRIB(p.PeerAddress.Unmap(), p.Family)
	s.synced.check(s.peers)
}

// grFamilies returns the families of the peer's graceful-restart
// capability that this session carries (the family of its address).
func grFamilies(caps []bgp.ParameterCapabilityInterface, addr netip.Addr) map[bgp.Family]bool {
	want := familyOf(addr)
	out := map[bgp.Family]bool{}
	for _, c := range caps {
		gr, ok := c.(*bgp.CapGracefulRestart)
		if !ok {
			continue
		}
		for _, t := range gr.Tuples {
			if f := bgp.NewFamily(t.AFI, t.SAFI); f == want {
				out[f] = true
			}
		}
	}
	return out
}

func familyOf(a netip.Addr) bgp.Family {
	if a.Is4() {
		return bgp.RF_IPv4_UC
	}
	return bgp.RF_IPv6_UC
}

// captureHandler passes GoBGP's logs on (from a level) and picks out the
// errors GoBGP only logs, so that `calicoctl node status` can say
// "Connection refused" or "bad peer as" instead of a bare "Active".
type captureHandler struct {
	inner slog.Handler
	level slog.Level
	peer  netip.Addr // set on a peer's logger (GoBGP attaches "Key": address)
	t     *peerTracker
}

func newCaptureHandler(inner slog.Handler, level slog.Level, t *peerTracker) *captureHandler {
	return &captureHandler{inner: inner, level: level, t: t}
}

// Enabled lets a peer's debug records through while its session is not
// established ("failed to connect" is a debug record), and only the
// configured level otherwise: GoBGP logs every UPDATE at debug level, and
// building those records costs time on a 100k-route push.
func (h *captureHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if l >= h.level && h.inner.Enabled(ctx, l) {
		return true
	}
	return h.peer.IsValid() && !h.t.established(h.peer)
}

func (h *captureHandler) Handle(ctx context.Context, r slog.Record) error {
	switch r.Message {
	case "failed to stop BGP server":
		if h.t.stopping.Load() {
			return nil
		}
	case "failed to connect", "sent notification", "received notification":
		// GoBGP v4 handles the OPEN of an outgoing connection outside the
		// FSM: a bad peer AS there only shows up as this log line.
		if !h.peer.IsValid() {
			break
		}
		var code, subcode uint8
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "Error":
				h.t.connectError(h.peer, socketError(a.Value.String()))
			case "Code":
				code = uint8(a.Value.Int64())
			case "Subcode":
				subcode = uint8(a.Value.Int64())
			}
			return true
		})
		if code != 0 {
			what := "Notification sent: "
			if r.Message == "received notification" {
				what = "Notification received: "
			}
			h.t.connectError(h.peer, what+bgp.NewNotificationErrorCode(code, subcode).String())
		}
	}
	if r.Level < h.level || !h.inner.Enabled(ctx, r.Level) {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

func (h *captureHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.inner = h.inner.WithAttrs(attrs)
	for _, a := range attrs {
		if a.Key == "Key" {
			if addr, err := netip.ParseAddr(a.Value.String()); err == nil {
				n.peer = addr.Unmap()
			}
		}
	}
	return &n
}

func (h *captureHandler) WithGroup(name string) slog.Handler {
	n := *h
	n.inner = h.inner.WithGroup(name)
	return &n
}

// socketError shortens "dial tcp 10.0.0.2:179: connect: connection refused"
// to "Socket: Connection refused", BIRD's wording (the C library's text of
// the errno). Go's own dial timeout, "i/o timeout", is what a wrong MD5 key
// or a silent peer produces: it reads as ETIMEDOUT does, "Connection timed
// out".
func socketError(s string) string {
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	if s == "" {
		return "Socket: error"
	}
	if s == "i/o timeout" {
		s = "connection timed out"
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return "Socket: " + string(r)
}

type routeCounts struct{ accepted, advertised uint64 }

// PeerStatus reports every desired peer, configured or not, with route
// counts.
func (s *Speaker) PeerStatus(ctx context.Context) ([]tbgp.PeerStatus, error) {
	return s.peerStatus(ctx, true)
}

// Sessions reports every desired peer without the costly counts.
func (s *Speaker) Sessions(ctx context.Context) ([]tbgp.PeerStatus, error) {
	return s.peerStatus(ctx, false)
}

func (s *Speaker) peerStatus(ctx context.Context, withCounts bool) ([]tbgp.PeerStatus, error) {
	s.mu.Lock()
	desired := append([]tbgp.PeerConfig(nil), s.desired.peers...)
	srv := s.srv
	s.mu.Unlock()
	live := map[netip.Addr]*api.Peer{}
	if srv != nil {
		err := srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			if a, err := netip.ParseAddr(p.GetConf().GetNeighborAddress()); err == nil {
				live[a.Unmap()] = p
			}
		})
		if err != nil {
			return nil, fmt.Errorf("list BGP peers: %w", err)
		}
	}
	var counts map[netip.Addr]routeCounts
	if withCounts {
		counts = s.routeCounts(ctx, live)
	}
	out := make([]tbgp.PeerStatus, 0, len(desired))
	for _, d := range desired {
		st := tbgp.PeerStatus{
			Address: d.Address, Port: d.EffectivePort(), ASN: d.ASN, Type: d.Type, Passive: d.Passive,
			State: tbgp.StateIdle,
		}
		if rec, ok := s.peers.get(d.Address); ok {
			st.State, st.Since, st.LastError = rec.state, rec.since, rec.lastErr
		}
		if d.ConfigError != "" {
			st.State, st.LastError = tbgp.StateIdle, d.ConfigError
		}
		if p, ok := live[d.Address]; ok && d.ConfigError == "" {
			st.State = apiStateName(p.GetState().GetSessionState())
			for _, af := range p.GetAfiSafis() {
				st.RoutesReceived += af.GetState().GetReceived()
			}
			st.RoutesAccepted = counts[d.Address].accepted
			st.RoutesAdvertised = counts[d.Address].advertised
			if st.Established() {
				st.LastError = ""
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address.Less(out[j].Address) })
	return out, nil
}

// countsCache is the last count of accepted and advertised routes and
// what it was computed from.
type countsCache struct {
	counts map[netip.Addr]routeCounts
	at     time.Time
	// gen and received are the change counters and the routes received
	// per peer when the count began: while they are the same, nothing the
	// count depends on has changed.
	gen      countsGen
	received map[netip.Addr]uint64
	// walked is how many paths the count visited.
	walked int
}

// countsGen are the counters of what route counts depend on: best-path
// events (learned and originated routes), filter generations and session
// changes. Paths that are accepted but not best show in the routes
// received per peer instead.
type countsGen struct{ rib, policy, sessions uint64 }

func (s *Speaker) countsGen() countsGen {
	return countsGen{rib: s.rib.gen.Load(), policy: s.policyGen.Load(), sessions: s.peers.gen.Load()}
}

// bigTable is the number of paths from which a count is worth reusing
// while routes keep changing.
const bigTable = 10000

// routeCounts counts, per peer, the received paths the import filter let
// through and the paths advertised to it. GoBGP's own "accepted" counter
// ignores policy; the paths a filter let through are the ones in the
// Loc-RIB (best or not), so one walk of it counts every peer at once. (A
// filtered walk of each Adj-RIB-In would also do, but GoBGP re-stamps the
// shared paths while doing it, racing its own event watchers.) Advertised
// runs the export filter over the table. Both are O(routes), so the last
// count is reused while nothing it depends on changed, and, in a table of
// bigTable paths or more that keeps changing (100k routes arriving), for
// StatusCacheTime. A small table is recounted after any change: a count
// that lags what the peer sent ("1 received, 0 accepted") is a wrong
// answer, not a cheap one.
func (s *Speaker) routeCounts(ctx context.Context, live map[netip.Addr]*api.Peer) map[netip.Addr]routeCounts {
	received := map[netip.Addr]uint64{}
	for a, p := range live {
		for _, af := range p.GetAfiSafis() {
			received[a] += af.GetState().GetReceived()
		}
	}
	gen := s.countsGen()
	s.mu.Lock()
	last, srv := s.counts, s.srv
	s.mu.Unlock()
	if last.counts != nil {
		unchanged := last.gen == gen && maps.Equal(last.received, received)
		if unchanged || (last.walked >= bigTable && time.Since(last.at) < s.opts.StatusCacheTime) {
			return last.counts
		}
	}
	counts := map[netip.Addr]routeCounts{}
	if srv == nil {
		return counts
	}
	_ = srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		a, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		if err != nil {
			return
		}
		var c routeCounts
		for _, af := range p.GetAfiSafis() {
			c.advertised += af.GetState().GetAdvertised()
		}
		counts[a.Unmap()] = c
	})
	walked := 0
	for _, f := range []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC} {
		_ = srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: f}, func(_ bgp.NLRI, paths []*apiutil.Path) {
			for _, p := range paths {
				walked++
				if !p.PeerAddress.IsValid() || p.Withdrawal {
					continue
				}
				a := p.PeerAddress.Unmap()
				if _, ours := live[a]; !ours {
					continue
				}
				c := counts[a]
				c.accepted++
				counts[a] = c
			}
		})
	}
	s.mu.Lock()
	s.counts = countsCache{counts: counts, at: time.Now(), gen: gen, received: received, walked: walked}
	s.mu.Unlock()
	return counts
}
