package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/bgp"
	"github.com/tabbynet/tabby/bgp/gobgp"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/syncer"
)

// SyncedKinds are the resources the BGP setup is computed from.
var SyncedKinds = []string{"Node", "BGPPeer", "BGPConfiguration", "IPPool", "BlockAffinity", "WorkloadEndpoint"}

// Config wires a Controller.
type Config struct {
	NodeName  string
	Datastore datastore.Interface
	Log       *slog.Logger
	// RouterID (CALICO_ROUTER_ID) overrides the router ID; invalid means
	// the node's IPv4 address.
	RouterID netip.Addr
	// Restarting says BGP routes of a previous run of this agent are still
	// in the kernel: the first speaker starts in graceful-restart mode.
	Restarting bool
	// InitialSyncTimeout bounds the initial sync (bgp.DefaultInitialSyncTimeout).
	InitialSyncTimeout time.Duration
	// ReadinessGrace is how long after start every peer must be up for
	// readiness (bgp.DefaultReadinessGrace).
	ReadinessGrace time.Duration
	// RecomputeInterval re-reads password files and recomputes everything
	// even without datastore events; 30 s by default.
	RecomputeInterval time.Duration
	// NewSpeaker makes a speaker; nil means the embedded GoBGP speaker.
	NewSpeaker func() bgp.Speaker
	// Password resolves BGP passwords; nil means ReadPassword.
	Password func(*v3.BGPPassword) (string, error)
}

// Controller runs the node's BGP speaker from the datastore.
type Controller struct {
	cfg   Config
	log   *slog.Logger
	kick  chan struct{}
	relay *relay
	// readyKick wakes the readiness watch when what Ready reads changed
	// outside any session: the speaker was started, replaced or stopped,
	// or the setup's error changed.
	readyKick chan struct{}

	mu         sync.Mutex
	nodes      map[v3.Key]*v3.Node
	peers      map[v3.Key]*v3.BGPPeer
	configs    map[v3.Key]*v3.BGPConfiguration
	pools      map[v3.Key]*v3.IPPool
	affinities map[v3.Key]*v3.BlockAffinity
	weps       map[v3.Key]*v3.WorkloadEndpoint // this node's only
	inSync     bool
	sp         bgp.Speaker
	stopFollow func() // ends the relay of sp's routes and waits for it
	global     bgp.GlobalConfig
	started    time.Time
	lastErr    error
	problems   []string
}

// New returns a controller; nothing runs until Run.
func New(cfg Config) *Controller {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.InitialSyncTimeout <= 0 {
		cfg.InitialSyncTimeout = bgp.DefaultInitialSyncTimeout
	}
	if cfg.ReadinessGrace <= 0 {
		cfg.ReadinessGrace = bgp.DefaultReadinessGrace
	}
	if cfg.RecomputeInterval <= 0 {
		cfg.RecomputeInterval = 30 * time.Second
	}
	if cfg.Password == nil {
		cfg.Password = ReadPassword
	}
	log := cfg.Log.With("component", "bgp")
	if cfg.NewSpeaker == nil {
		cfg.NewSpeaker = func() bgp.Speaker { return gobgp.New(gobgp.Options{Logger: log}) }
	}
	return &Controller{
		cfg:        cfg,
		log:        log,
		kick:       make(chan struct{}, 1),
		readyKick:  make(chan struct{}, 1),
		relay:      newRelay(),
		nodes:      map[v3.Key]*v3.Node{},
		peers:      map[v3.Key]*v3.BGPPeer{},
		configs:    map[v3.Key]*v3.BGPConfiguration{},
		pools:      map[v3.Key]*v3.IPPool{},
		affinities: map[v3.Key]*v3.BlockAffinity{},
		weps:       map[v3.Key]*v3.WorkloadEndpoint{},
	}
}

// Run follows the datastore and drives the speaker until ctx ends. On the
// way out the speaker stops gracefully: no Cease is sent to
// graceful-restart peers, so they keep this node's routes while it
// restarts, and the kernel keeps the learned ones.
func (c *Controller) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		syncer.New(c.cfg.Datastore, SyncedKinds, callbacks{c}, c.log.With("component", "bgp-syncer")).Run(ctx)
	}()
	defer wg.Wait()

	recompute := time.NewTicker(c.cfg.RecomputeInterval)
	defer recompute.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			c.stopSpeaker()
			return nil
		case <-c.kick:
		case <-recompute.C:
		case <-retry.C:
		}
		err := c.reconcile(ctx)
		c.mu.Lock()
		errChanged := (err == nil) != (c.lastErr == nil) || (err != nil && err.Error() != c.lastErr.Error())
		c.lastErr = err
		c.mu.Unlock()
		if errChanged {
			signal(c.readyKick)
		}
		if err == nil {
			backoff = 0
			continue
		}
		backoff = min(max(2*backoff, time.Second), 30*time.Second)
		c.log.Warn("BGP setup failed; will retry", "error", err, "retryIn", backoff)
		retry.Reset(backoff)
	}
}

func (c *Controller) signal() { signal(c.kick) }

// signal is a coalescing send on a channel of capacity one.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// reconcile computes the desired setup and hands it to the speaker,
// starting or restarting the speaker when its identity changed.
func (c *Controller) reconcile(ctx context.Context) error {
	c.mu.Lock()
	if !c.inSync {
		c.mu.Unlock()
		return nil // never act on a partial view of the datastore
	}
	in := Input{
		NodeName:   c.cfg.NodeName,
		Nodes:      slices.Collect(maps.Values(c.nodes)),
		Peers:      slices.Collect(maps.Values(c.peers)),
		Configs:    slices.Collect(maps.Values(c.configs)),
		Pools:      slices.Collect(maps.Values(c.pools)),
		Affinities: slices.Collect(maps.Values(c.affinities)),
		Workloads:  slices.Collect(maps.Values(c.weps)),
		RouterID:   c.cfg.RouterID,
		Password:   c.cfg.Password,
	}
	c.mu.Unlock()

	d, err := Compute(in)
	if err != nil {
		return err
	}
	c.logProblems(d.Problems)
	d.Global.InitialSyncTimeout = c.cfg.InitialSyncTimeout
	d.Global.ListenAddresses = listenAddresses(in.Configs, d)
	c.relay.setSelf(d.NodeIPv4, d.NodeIPv6)

	sp, err := c.ensureSpeaker(ctx, d.Global)
	if err != nil {
		return err
	}
	// Filters first: the speaker applies them before any peer anyway, but
	// the order here documents the intent.
	sp.SetPolicy(d.Policy)
	sp.SetAdvertisements(d.Advertisements)
	sp.SetPeers(d.Peers)
	return nil
}

// listenAddresses applies bindMode NodeIP (listen on the node's addresses
// only); None, Calico's default, listens everywhere.
func listenAddresses(configs []*v3.BGPConfiguration, d Desired) []netip.Addr {
	for _, cfg := range configs {
		if cfg.Name == v3.DefaultConfigName && cfg.Spec.BindMode != nil && *cfg.Spec.BindMode == "NodeIP" {
			var out []netip.Addr
			for _, a := range []netip.Addr{d.NodeIPv4, d.NodeIPv6} {
				if a.IsValid() {
					out = append(out, a)
				}
			}
			return out
		}
	}
	return nil
}

func (c *Controller) logProblems(problems []string) {
	c.mu.Lock()
	changed := !slices.Equal(problems, c.problems)
	c.problems = problems
	c.mu.Unlock()
	if changed && len(problems) > 0 {
		c.log.Warn("BGP configuration problems", "problems", strings.Join(problems, "; "))
	}
}

func sameGlobal(a, b bgp.GlobalConfig) bool {
	return a.RouterID == b.RouterID && a.ASN == b.ASN && a.ListenPort == b.ListenPort && slices.Equal(a.ListenAddresses, b.ListenAddresses)
}

// ensureSpeaker returns a speaker running with g, starting the first one or
// replacing one whose identity differs (GoBGP cannot change AS, router ID
// or listener live).
func (c *Controller) ensureSpeaker(ctx context.Context, g bgp.GlobalConfig) (bgp.Speaker, error) {
	c.mu.Lock()
	sp, running := c.sp, c.global
	c.mu.Unlock()
	if sp != nil && sameGlobal(running, g) {
		return sp, nil
	}
	first := sp == nil
	if !first {
		c.log.Info("BGP identity changed; restarting the speaker", "asn", g.ASN, "routerID", g.RouterID, "port", g.ListenPort,
			"oldASN", running.ASN, "oldRouterID", running.RouterID, "oldPort", running.ListenPort)
		c.stopSpeaker()
	}
	// After our own restart of the speaker the learned routes are still in
	// the kernel, exactly as after an agent restart.
	g.Restarting = c.cfg.Restarting || !first
	next := c.cfg.NewSpeaker()
	if err := next.Start(ctx, g); err != nil {
		return nil, fmt.Errorf("start the BGP speaker: %w", err)
	}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	stopFollow := func() { cancel(); <-done }
	c.mu.Lock()
	c.sp, c.global, c.started, c.stopFollow = next, g, time.Now(), stopFollow
	c.mu.Unlock()
	signal(c.readyKick)
	go func() {
		defer close(done)
		c.relay.follow(fctx, next, first)
	}()
	return next, nil
}

// stopSpeaker stops relaying first, then the speaker: a stopping speaker
// drops its peers' paths, and those withdrawals must not reach Felix (the
// kernel keeps the routes for the next speaker or agent to adopt).
func (c *Controller) stopSpeaker() {
	c.mu.Lock()
	sp, stopFollow := c.sp, c.stopFollow
	c.sp, c.stopFollow = nil, nil
	c.mu.Unlock()
	signal(c.readyKick)
	if stopFollow != nil {
		stopFollow()
	}
	if sp != nil {
		sp.Stop(true)
	}
}

// LastError is the error of the latest setup attempt (nil when it worked).
func (c *Controller) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// --- routes for Felix ---

// RouteChanges is signalled when learned routes changed.
func (c *Controller) RouteChanges() <-chan struct{} { return c.relay.signal }

// TakeRouteChanges returns the learned routes added, changed or withdrawn
// since the previous call. Routes whose next hop is this node never appear.
func (c *Controller) TakeRouteChanges() ([]bgp.Route, []netip.Prefix) { return c.relay.take() }

// Synced is closed once the first speaker's initial sync is over.
func (c *Controller) Synced() <-chan struct{} { return c.relay.synced }

// --- syncer callbacks: record and signal ---

type callbacks struct{ c *Controller }

func (cb callbacks) OnUpdates(us []syncer.Update) {
	c := cb.c
	c.mu.Lock()
	for _, u := range us {
		del := u.Type == datastore.Deleted
		switch r := u.Resource.(type) {
		case *v3.Node:
			put(c.nodes, u.Key, r, del)
		case *v3.BGPPeer:
			put(c.peers, u.Key, r, del)
		case *v3.BGPConfiguration:
			put(c.configs, u.Key, r, del)
		case *v3.IPPool:
			put(c.pools, u.Key, r, del)
		case *v3.BlockAffinity:
			put(c.affinities, u.Key, r, del || r.Spec.Node != c.cfg.NodeName)
		case *v3.WorkloadEndpoint:
			put(c.weps, u.Key, r, del || r.Spec.Node != c.cfg.NodeName)
		case nil:
			// Deleted: the resource is not given, the key says what went.
			for _, m := range []func(v3.Key){
				func(k v3.Key) { delete(c.nodes, k) }, func(k v3.Key) { delete(c.peers, k) },
				func(k v3.Key) { delete(c.configs, k) }, func(k v3.Key) { delete(c.pools, k) },
				func(k v3.Key) { delete(c.affinities, k) }, func(k v3.Key) { delete(c.weps, k) },
			} {
				m(u.Key)
			}
		}
	}
	c.mu.Unlock()
	c.signal()
}

func (cb callbacks) OnInSync() {
	cb.c.mu.Lock()
	cb.c.inSync = true
	cb.c.mu.Unlock()
	cb.c.log.Info("datastore in sync; configuring BGP")
	cb.c.signal()
}

func put[T any](m map[v3.Key]*T, k v3.Key, r *T, del bool) {
	if del {
		delete(m, k)
		return
	}
	m[k] = r
}

// errNotRunning is returned by status calls before the speaker runs.
var errNotRunning = errors.New("the BGP speaker is not running yet")
