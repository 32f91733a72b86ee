package gobgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/config/oc"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/tabbynet/tabby/bgp"
)

// Options tune the speaker; the zero value is production behaviour.
type Options struct {
	// Logger receives the speaker's logs and GoBGP's (at Warn and above
	// unless GoBGPLogLevel says otherwise). Nil discards.
	Logger *slog.Logger
	// GoBGPLogLevel is the level from which GoBGP's own logs are passed on;
	// zero means Warn.
	GoBGPLogLevel slog.Level
	// ConnectRetry is the time between connection attempts (BIRD's connect
	// retry time, 5 s, by default; GoBGP's 120 s default is far too slow for
	// a node that just booted). GoBGP never retries faster than every 2 s.
	ConnectRetry time.Duration
	// IdleHoldTime is how long a session stays idle after an error (BIRD's
	// error wait time, 5 s, by default).
	IdleHoldTime time.Duration
	// ResyncInterval is the period of the full Loc-RIB scan that repairs
	// the learned-route map; 60 s by default.
	ResyncInterval time.Duration
	// StatusCacheTime bounds how often PeerStatus recounts accepted and
	// advertised routes (a walk of the Loc-RIB) while a table of 10k
	// paths or more keeps changing; 5 s by default. A small or quiet table
	// is counted exactly.
	StatusCacheTime time.Duration
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.GoBGPLogLevel == 0 {
		o.GoBGPLogLevel = slog.LevelWarn
	}
	if o.ConnectRetry == 0 {
		o.ConnectRetry = 5 * time.Second
	}
	if o.IdleHoldTime == 0 {
		o.IdleHoldTime = 5 * time.Second
	}
	if o.ResyncInterval == 0 {
		o.ResyncInterval = time.Minute
	}
	if o.StatusCacheTime == 0 {
		o.StatusCacheTime = 5 * time.Second
	}
}

// Speaker is a bgp.Speaker backed by GoBGP.
type Speaker struct {
	opts Options
	log  *slog.Logger

	rib    *rib
	peers  *peerTracker
	synced *syncTracker

	// mu guards the desired state and the lifecycle fields.
	mu      sync.Mutex
	desired desiredState
	srv     *server.BgpServer
	global  bgp.GlobalConfig
	cancel  context.CancelFunc
	done    chan struct{}
	stopped bool
	lastErr error
	kick    chan struct{}
	counts  countsCache

	// Owned by the loop goroutine (and by Start before the loop runs).
	applied appliedState
	// appliedGen is the desired-state generation the last finished apply
	// pass covered (tests wait on it).
	appliedGen atomic.Uint64
	// policyGen counts installed filter generations (route counts depend
	// on them).
	policyGen atomic.Uint64
}

type desiredState struct {
	gen      uint64 // bumped by every Set*
	peers    []bgp.PeerConfig
	peersSet bool
	policy   bgp.Policy
	ads      []bgp.Advertisement
}

type appliedState struct {
	peers  map[netip.Addr]appliedPeer
	policy policyState
	ads    map[netip.Prefix]netip.Addr
}

var _ bgp.Speaker = (*Speaker)(nil)

// New returns a speaker that is not started yet.
func New(opts Options) *Speaker {
	opts.setDefaults()
	return &Speaker{
		opts:   opts,
		log:    opts.Logger,
		rib:    newRIB(),
		peers:  newPeerTracker(),
		synced: newSyncTracker(),
		kick:   make(chan struct{}, 1),
		applied: appliedState{
			peers: map[netip.Addr]appliedPeer{},
			ads:   map[netip.Prefix]netip.Addr{},
		},
	}
}

// Start brings GoBGP up with cfg, installs the filters and starts the loop
// that applies the desired state.
func (s *Speaker) Start(ctx context.Context, cfg bgp.GlobalConfig) error {
	s.mu.Lock()
	if s.srv != nil || s.stopped {
		s.mu.Unlock()
		return errors.New("start BGP speaker: already started")
	}
	s.mu.Unlock()
	if !cfg.RouterID.Is4() {
		return fmt.Errorf("start BGP speaker: router ID %s is not an IPv4 address", cfg.RouterID)
	}
	if cfg.ASN == 0 {
		return errors.New("start BGP speaker: AS number 0")
	}
	if cfg.InitialSyncTimeout == 0 {
		cfg.InitialSyncTimeout = bgp.DefaultInitialSyncTimeout
	}

	srv := server.NewBgpServer(server.LoggerOption(slog.New(newCaptureHandler(s.log.Handler(), s.opts.GoBGPLogLevel, s.peers)), nil))
	go srv.Serve()
	fail := func(err error) error {
		srv.Stop()
		return err
	}

	port := int32(cfg.ListenPort)
	switch {
	case cfg.ListenPort == 0:
		port = bgp.DefaultListenPort
	case cfg.ListenPort < 0:
		port = -1
	}
	var listen []string
	for _, a := range cfg.ListenAddresses {
		listen = append(listen, a.String())
	}
	if len(listen) == 0 && port > 0 {
		listen = []string{"0.0.0.0"}
		if hostHasIPv6() {
			listen = append(listen, "::")
		}
	}
	err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:             cfg.ASN,
		RouterId:        cfg.RouterID.String(),
		ListenPort:      port,
		ListenAddresses: listen,
		Families:        []uint32{uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV4_UNICAST]), uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV6_UNICAST])},
	}})
	if err != nil {
		return fail(fmt.Errorf("start BGP speaker (AS %d, router ID %s, port %d): %w", cfg.ASN, cfg.RouterID, port, err))
	}

	loopCtx, cancel := context.WithCancel(context.Background())
	// One watcher for best paths, End-of-RIB and peer states, so the three
	// arrive in the order GoBGP produced them: when a peer's End-of-RIB is
	// seen, every best path it caused has already been recorded.
	err = srv.WatchEvent(loopCtx, server.WatchEventMessageCallbacks{
		OnBestPath:   s.rib.onBestPath,
		OnPathEor:    s.onEOR,
		OnPeerUpdate: s.onPeerUpdate,
	}, server.WatchBestPath(true), server.WatchEor(false), server.WatchPeer())
	if err != nil {
		cancel()
		return fail(fmt.Errorf("start BGP speaker: watch events: %w", err))
	}

	s.mu.Lock()
	s.srv, s.global, s.cancel, s.done = srv, cfg, cancel, make(chan struct{})
	desired := s.desired
	s.mu.Unlock()

	// The filters go in before the loop can add any peer.
	if err := s.applyPolicy(ctx, desired); err != nil {
		s.Stop(false)
		return fmt.Errorf("start BGP speaker: install filters: %w", err)
	}
	s.synced.start(cfg.InitialSyncTimeout)
	go s.loop(loopCtx)
	s.log.Info("BGP speaker started", "asn", cfg.ASN, "routerID", cfg.RouterID, "port", port, "listen", listen, "restarting", cfg.Restarting)
	return nil
}

// hostHasIPv6 reports whether an IPv6 socket can be bound; GoBGP's default
// of listening on :: fails the whole start on hosts without IPv6.
func hostHasIPv6() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// SetPeers records the desired peers.
func (s *Speaker) SetPeers(peers []bgp.PeerConfig) {
	s.mu.Lock()
	s.desired.peers = append([]bgp.PeerConfig(nil), peers...)
	s.desired.peersSet = true
	s.desired.gen++
	s.mu.Unlock()
	s.signal()
}

// SetPolicy records the desired filter inputs.
func (s *Speaker) SetPolicy(p bgp.Policy) {
	s.mu.Lock()
	s.desired.policy = bgp.Policy{
		Pools:     append([]netip.Prefix(nil), p.Pools...),
		OwnBlocks: append([]netip.Prefix(nil), p.OwnBlocks...),
	}
	s.desired.gen++
	s.mu.Unlock()
	s.signal()
}

// SetAdvertisements records the desired originated prefixes.
func (s *Speaker) SetAdvertisements(ads []bgp.Advertisement) {
	s.mu.Lock()
	s.desired.ads = append([]bgp.Advertisement(nil), ads...)
	s.desired.gen++
	s.mu.Unlock()
	s.signal()
}

func (s *Speaker) signal() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Learned returns the learned best paths.
func (s *Speaker) Learned() []bgp.Route { return s.rib.snapshot() }

// RouteChanges is signalled when learned routes change.
func (s *Speaker) RouteChanges() <-chan struct{} { return s.rib.signal }

// TakeRouteChanges returns the changes since the last call.
func (s *Speaker) TakeRouteChanges() ([]bgp.Route, []netip.Prefix) { return s.rib.take() }

// Synced is closed when the initial sync is over.
func (s *Speaker) Synced() <-chan struct{} { return s.synced.done }

// SessionChanges is signalled when a session changed state or a peer came
// or went.
func (s *Speaker) SessionChanges() <-chan struct{} { return s.peers.changed }

// LastError is the error of the most recent apply attempt, nil when the
// desired state was applied.
func (s *Speaker) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Stop ends the speaker. A graceful stop closes the sessions without a
// Cease, so graceful-restart peers keep our routes until we come back; the
// kernel's routes are left alone either way.
func (s *Speaker) Stop(graceful bool) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	srv, cancel, done := s.srv, s.cancel, s.done
	s.mu.Unlock()
	if srv == nil {
		return
	}
	cancel()
	<-done
	if err := srv.StopBgp(context.Background(), &api.StopBgpRequest{AllowGracefulRestart: graceful}); err != nil {
		s.log.Warn("stop BGP speaker", "error", err)
	}
	// Stop ends GoBGP's remaining goroutines; its own StopBgp (without
	// graceful restart) finds nothing left to stop, and its complaint
	// about that is dropped by the log handler.
	s.peers.stopping.Store(true)
	srv.Stop()
	s.synced.stop()
	s.log.Info("BGP speaker stopped", "graceful", graceful)
}

// loop applies the desired state whenever it changes, retries failures
// with backoff, and rescans the Loc-RIB periodically.
func (s *Speaker) loop(ctx context.Context) {
	defer close(s.done)
	resync := time.NewTicker(s.opts.ResyncInterval)
	defer resync.Stop()
	retry := time.NewTimer(0)
	<-retry.C
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-retry.C:
		case <-resync.C:
			s.rib.resync(ctx, s.srvHandle(), s.log)
			s.synced.check(s.peers)
			continue
		}
		err := s.reconcile(ctx)
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		if err == nil {
			backoff = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
		s.log.Warn("applying BGP configuration failed; will retry", "error", err, "retryIn", backoff)
		retry.Reset(backoff)
	}
}

func (s *Speaker) srvHandle() *server.BgpServer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// reconcile applies the desired state: filters, then peers, then
// advertisements. It keeps going after a failure and joins the errors.
func (s *Speaker) reconcile(ctx context.Context) error {
	s.mu.Lock()
	desired := s.desired
	s.mu.Unlock()
	var errs []error
	if err := s.applyPolicy(ctx, desired); err != nil {
		// Adding peers under stale filters could let a hijack in: stop here.
		return fmt.Errorf("apply BGP filters: %w", err)
	}
	if err := s.applyPeers(ctx, desired); err != nil {
		errs = append(errs, err)
	}
	if err := s.applyAdvertisements(desired.ads); err != nil {
		errs = append(errs, err)
	}
	if desired.peersSet {
		s.synced.setExpected(desired.peers)
	}
	s.synced.check(s.peers)
	s.appliedGen.Store(desired.gen)
	return errors.Join(errs...)
}
