package felix

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
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/felix/calc"
	"github.com/tabbynet/tabby/felix/dataplane"
)

// Felix keeps this node's workload dataplane in step with its intent.
type Felix struct {
	cfg     Config
	ds      datastore.Interface
	node    string
	log     *slog.Logger
	dp      Dataplane
	metrics *metrics
	running atomic.Bool

	// kick is the one-slot signal from handlers to the loop: any number of
	// signals while the loop is busy collapse into one more pass.
	kick chan struct{}

	mu sync.Mutex
	// dsWEPs and affinities are this node's resources as the datastore
	// syncer last reported them.
	dsWEPs     map[v3.Key]*v3.WorkloadEndpoint
	affinities map[v3.Key]*v3.BlockAffinity
	// local holds what the CNI path recorded and the datastore has not
	// confirmed yet (a nil endpoint is a removal).
	local    map[v3.Key]localIntent
	dsInSync bool
	// remote are the routes learned over BGP (prefix to next hop), kept up
	// to date from cfg.RemoteRoutes; bgpSynced is set when its initial sync
	// is over (always, without BGP).
	remote    map[netip.Prefix]netip.Addr
	bgpSynced bool
	// gen counts intent changes; an apply covers the intent up to the gen
	// it snapshotted.
	gen uint64
	// last is the result of the latest apply; applied is closed and
	// replaced when a new result is published.
	last     applyResult
	applied  chan struct{}
	problems []string // calc problems of the last computation, to log changes only
}

type localIntent struct {
	wep     *v3.WorkloadEndpoint // nil: removed
	expires time.Time
}

type applyResult struct {
	done     bool
	gen      uint64
	desired  dataplane.State
	reached  dataplane.State
	err      error
	problems []string
}

// New returns a Felix for node nodeName reading ds. Nothing runs until Run.
func New(cfg Config, ds datastore.Interface, nodeName string, log *slog.Logger) *Felix {
	cfg = cfg.withDefaults()
	log = log.With("component", "felix", "node", nodeName)
	dp := cfg.Dataplane
	if dp == nil {
		// One netlink socket for the process's life, opened in the caller's
		// namespace (the host's for the node agent). netlink's zero Handle
		// would open one per request, which costs more than the route:
		// 100k routes took 2.0 s that way against 0.76 s on one socket.
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			log.Warn("cannot open a netlink socket; using one per request", "err", err)
			h = &netlink.Handle{}
		}
		dp = dataplane.NewReconciler(h, dataplane.ProcSys{}, log.With("component", "dataplane"))
	}
	return &Felix{
		cfg:        cfg,
		ds:         ds,
		node:       nodeName,
		log:        log,
		dp:         dp,
		metrics:    newMetrics(cfg.Registerer),
		kick:       make(chan struct{}, 1),
		dsWEPs:     map[v3.Key]*v3.WorkloadEndpoint{},
		affinities: map[v3.Key]*v3.BlockAffinity{},
		local:      map[v3.Key]localIntent{},
		remote:     map[netip.Prefix]netip.Addr{},
		bgpSynced:  cfg.RemoteRoutes == nil,
		applied:    make(chan struct{}),
	}
}

// Run syncs from the datastore and drives the dataplane until ctx ends, then
// returns nil. A datastore outage is not an error: the syncer retries, and
// the dataplane keeps its last state meanwhile.
func (f *Felix) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("felix: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	syncErr := make(chan error, 1)
	go func() {
		syncErr <- f.runSyncer(ctx)
		cancel()
	}()
	routesDone := make(chan struct{})
	go func() {
		defer close(routesDone)
		f.followRemoteRoutes(ctx)
	}()
	f.loop(ctx)
	<-routesDone
	err := <-syncErr
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("felix: datastore syncer: %w", err)
	}
	return nil
}

// InSync reports whether Felix has seen the whole datastore and completed
// at least one apply since: the node's readiness for workload networking.
func (f *Felix) InSync() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dsInSync && f.last.done
}

func (f *Felix) signal() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// --- syncer callbacks: record intent only ---

func (f *Felix) onUpdates(updates []update) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range updates {
		switch u.key.Kind {
		case "WorkloadEndpoint":
			f.onWEPLocked(u)
		case "BlockAffinity":
			a, ok := u.resource.(*v3.BlockAffinity)
			if u.deleted || !ok || a.Spec.Node != f.node {
				delete(f.affinities, u.key)
			} else {
				f.affinities[u.key] = a
			}
		default:
			continue
		}
	}
	f.gen++
	f.signal()
}

func (f *Felix) onWEPLocked(u update) {
	wep, isWEP := u.resource.(*v3.WorkloadEndpoint)
	if u.deleted || !isWEP || wep == nil || wep.Spec.Node != f.node {
		// What went away: the update's resource when it has one, else the
		// last state the datastore told us.
		gone := f.dsWEPs[u.key]
		if isWEP && wep != nil {
			gone = wep
		}
		delete(f.dsWEPs, u.key)
		// A pending removal is confirmed, and so is a pending upsert of
		// this same endpoint being undone. A late delete of an older
		// incarnation (a pod re-created under the same name) leaves the
		// new one in place.
		if li, pending := f.local[u.key]; pending && (li.wep == nil || (gone != nil && sameEndpoint(li.wep, gone))) {
			delete(f.local, u.key)
		}
		return
	}
	f.dsWEPs[u.key] = wep
	// The datastore caught up with the CNI path's upsert. A pending removal
	// stays until the datastore reports the delete (this is a late event).
	if li, pending := f.local[u.key]; pending && li.wep != nil && sameEndpoint(li.wep, wep) {
		delete(f.local, u.key)
	}
}

// sameEndpoint: same container and same routing (interface and addresses).
func sameEndpoint(a, b *v3.WorkloadEndpoint) bool {
	return a.Spec.ContainerID == b.Spec.ContainerID && a.Spec.InterfaceName == b.Spec.InterfaceName &&
		slices.Equal(a.Spec.IPNetworks, b.Spec.IPNetworks)
}

func (f *Felix) onInSync() {
	f.mu.Lock()
	if !f.dsInSync {
		f.log.Info("datastore in sync; programming the dataplane")
	}
	f.dsInSync = true
	f.gen++
	f.mu.Unlock()
	f.signal()
}

// followRemoteRoutes records the routes BGP learns (intent only, like the
// syncer callbacks) and when its initial sync ends.
func (f *Felix) followRemoteRoutes(ctx context.Context) {
	src := f.cfg.RemoteRoutes
	if src == nil {
		return
	}
	synced := src.Synced()
	for {
		select {
		case <-ctx.Done():
			return
		case <-src.RouteChanges():
		case <-synced:
			synced = nil
			f.log.Info("BGP initial sync over; remote routes not re-learned will now be pruned")
		}
		changed, withdrawn := src.TakeRouteChanges()
		f.mu.Lock()
		for _, p := range withdrawn {
			delete(f.remote, p)
		}
		for _, r := range changed {
			f.remote[r.Prefix] = r.NextHop
		}
		if synced == nil {
			f.bgpSynced = true
		}
		f.gen++
		f.mu.Unlock()
		f.signal()
	}
}

// --- the loop ---

func (f *Felix) loop(ctx context.Context) {
	resync := time.NewTicker(f.cfg.RouteRefreshInterval)
	defer resync.Stop()
	retry := time.NewTimer(0)
	stopTimer(retry)
	defer retry.Stop()
	expiry := time.NewTimer(0)
	stopTimer(expiry)
	defer expiry.Stop()

	var backoff time.Duration
	var lastApply time.Time
	// full asks for an apply that dumps the kernel (the first one, the
	// periodic resync, and the one after BGP's initial sync, which prunes
	// the remote routes kept meanwhile); the others write only what
	// changed, which is what a burst of 100k BGP routes needs.
	full, lastKeep := true, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
		case <-resync.C:
			f.log.Debug("periodic resync")
			full = true
		case <-retry.C:
		case <-expiry.C:
		}
		if wait := f.cfg.MinApplyInterval - time.Since(lastApply); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		// Everything signalled up to now is covered by this pass.
		select {
		case <-f.kick:
		default:
		}

		in, keepRemote, gen, nextExpiry, ok := f.snapshot(time.Now())
		if !ok {
			f.log.Debug("datastore not in sync yet; writing nothing")
			continue
		}
		desired, problems := calc.Compute(in)
		desired.KeepRemoteRoutes = keepRemote
		desired.Incremental = !full && keepRemote == lastKeep
		full, lastKeep = false, keepRemote
		start := time.Now()
		reached, err := f.dp.Apply(desired)
		lastApply = time.Now()
		f.metrics.reconcileDuration.Observe(lastApply.Sub(start).Seconds())
		f.metrics.routesProgrammed.Set(float64(len(reached.Routes)))
		f.publish(applyResult{done: true, gen: gen, desired: desired, reached: reached, err: err, problems: problems})

		stopTimer(retry)
		if err != nil {
			f.metrics.applyErrors.Inc()
			backoff = min(max(2*backoff, f.cfg.RetryInitialBackoff), f.cfg.RetryMaxBackoff)
			f.log.Warn("dataplane apply failed; retrying", "error", err, "retry_in", backoff)
			retry.Reset(backoff)
		} else if backoff > 0 {
			backoff = 0
			f.log.Info("dataplane apply succeeded after failures", "routes", len(reached.Routes))
		}
		stopTimer(expiry)
		if !nextExpiry.IsZero() {
			expiry.Reset(max(time.Until(nextExpiry), 0))
		}
	}
}

func stopTimer(t *time.Timer) {
	t.Stop()
	select {
	case <-t.C:
	default:
	}
}

// snapshot copies the intent for calc, dropping expired CNI-path records.
// ok is false before the first datastore sync; keepRemote is true until
// BGP's initial sync.
func (f *Felix) snapshot(now time.Time) (in calc.Input, keepRemote bool, gen uint64, nextExpiry time.Time, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.dsInSync {
		return in, false, 0, time.Time{}, false
	}
	for key, li := range f.local {
		if !now.Before(li.expires) {
			f.log.Warn("the datastore never confirmed a CNI-path change; following the datastore",
				"endpoint", key.String(), "removed", li.wep == nil)
			delete(f.local, key)
			continue
		}
		if nextExpiry.IsZero() || li.expires.Before(nextExpiry) {
			nextExpiry = li.expires
		}
	}
	weps := maps.Clone(f.dsWEPs)
	for key, li := range f.local {
		if li.wep == nil {
			delete(weps, key)
		} else {
			weps[key] = li.wep
		}
	}
	in = calc.Input{
		NodeName:     f.node,
		Workloads:    slices.Collect(maps.Values(weps)),
		Affinities:   slices.Collect(maps.Values(f.affinities)),
		IPForwarding: f.cfg.IPForwarding != IPForwardingDisabled,
		IPv6Support:  *f.cfg.IPv6Support,
		RemoteRoutes: maps.Clone(f.remote),
	}
	return in, !f.bgpSynced, f.gen, nextExpiry, true
}

func (f *Felix) publish(res applyResult) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(res.problems, f.problems) && len(res.problems) > 0 {
		f.log.Warn("desired state has problems", "problems", strings.Join(res.problems, "; "))
	}
	f.problems = res.problems
	f.last = res
	close(f.applied)
	f.applied = make(chan struct{})
}

// waitApplied blocks until an apply covering intent generation gen has
// completed, and returns its result.
func (f *Felix) waitApplied(ctx context.Context, gen uint64) (applyResult, error) {
	for {
		f.mu.Lock()
		res, ch := f.last, f.applied
		f.mu.Unlock()
		if res.done && res.gen >= gen {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return applyResult{}, ctx.Err()
		case <-ch:
		}
	}
}
