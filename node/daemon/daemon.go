// Package daemon wires calico-node: it builds the parts (cells) with their
// explicit dependencies and runs them in order —
//
//	embedded etcd (TABBY_EMBEDDED_ETCD_DIR only) → datastore (waiting with
//	backoff when WAIT_FOR_DATASTORE=true) → startup (Node, default pools) →
//	felix → health monitors → agent socket → health and metrics HTTP
//
// — and stops them in reverse on SIGTERM/SIGINT: the HTTP servers and the
// agent socket close first, Felix stops without touching the kernel (routes
// stay, so a restart does not drop forwarding), the datastore connection and
// the embedded etcd close last.
//
// It owns the order and the wiring, and nothing else: what each part does
// lives in its own package (node/startup, node/agent, node/health, felix,
// ipam, datastore). A failure while starting is returned with the part's
// name; a part that fails while running ends Run with its error. A bad
// request, a malformed gRPC call or a datastore blip is not such a failure:
// the agent answers an error, readiness goes false and comes back.
//
// Hook for BGP: a later BGP speaker becomes one more cell started after
// felix; it registers its own reporter on Health() (Calico's bird-ready)
// and passes its peer table to the agent (agent.Options.BGP).
package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vishvananda/netlink"

	"github.com/tabbynet/tabby/felix"
	"github.com/tabbynet/tabby/felix/dataplane"
	"github.com/tabbynet/tabby/internal/version"
	"github.com/tabbynet/tabby/ipam"
	"github.com/tabbynet/tabby/node/agent"
	"github.com/tabbynet/tabby/node/autodetect"
	"github.com/tabbynet/tabby/node/config"
	"github.com/tabbynet/tabby/node/health"
)

// Defaults of Options.
const (
	DefaultProbeInterval   = 10 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	DefaultMaxWaitBackoff  = 10 * time.Second
)

// Options are the knobs that are not in the environment.
type Options struct {
	Log *slog.Logger
	// System is where node addresses are detected; nil is the host.
	System autodetect.System
	// ProbeInterval is how often the datastore is probed for readiness.
	ProbeInterval time.Duration
	// ShutdownTimeout bounds Stop.
	ShutdownTimeout time.Duration
	// MaxWaitBackoff caps the pause between datastore attempts while
	// WAIT_FOR_DATASTORE waits.
	MaxWaitBackoff time.Duration
	// Dataplane is where Felix applies its state; nil is the kernel of this
	// process's network namespace (tests pass one bound to a namespace).
	Dataplane felix.Dataplane
}

// Daemon is a wired calico-node.
type Daemon struct {
	log      *slog.Logger
	opts     Options
	lc       lifecycle
	health   *health.Aggregator
	registry *prometheus.Registry

	startup *startupCell
	healthS *httpCell
	metrics *httpCell

	fatalOnce sync.Once
	fatalCh   chan error
}

// New wires a daemon for cfg. Nothing runs until Start.
func New(cfg config.Config, opts Options) *Daemon {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.System == nil {
		opts.System = autodetect.Host()
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = DefaultProbeInterval
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	if opts.MaxWaitBackoff <= 0 {
		opts.MaxWaitBackoff = DefaultMaxWaitBackoff
	}
	log := opts.Log
	d := &Daemon{
		log:      log,
		opts:     opts,
		lc:       lifecycle{log: log},
		health:   health.New(log.With("component", "health")),
		registry: newRegistry(cfg.Metrics),
		fatalCh:  make(chan error, 1),
	}

	var embedded *embeddedEtcdCell
	if cfg.EmbeddedEtcdDir != "" {
		embedded = &embeddedEtcdCell{dir: cfg.EmbeddedEtcdDir, addr: cfg.EmbeddedEtcdAddress, log: log, fatal: d.fatal}
		d.lc.append(embedded)
	}
	ds := &datastoreCell{cfg: cfg.Datastore, wait: cfg.WaitForDatastore, nodeName: cfg.NodeName, embedded: embedded,
		log: log.With("component", "datastore"), maxWait: opts.MaxWaitBackoff}
	d.lc.append(ds)
	d.startup = &startupCell{cfg: cfg, ds: ds, sys: opts.System, log: log.With("component", "startup")}
	d.lc.append(d.startup)
	var bgpc *bgpCell
	if cfg.NetworkingBackend == "bird" {
		bgpc = &bgpCell{nodeName: cfg.NodeName, ds: ds, agg: d.health, log: log, fatal: d.fatal,
			readyInterval: max(opts.ProbeInterval, time.Second)}
		switch hr := opts.Dataplane.(type) {
		case interface{ HasRemoteRoutes() (bool, error) }:
			bgpc.remoteRoutesPresent = hr.HasRemoteRoutes
		case nil:
			bgpc.remoteRoutesPresent = func() (bool, error) { return dataplane.HasRemoteRoutes(&netlink.Handle{}) }
		}
		d.lc.append(bgpc)
	}
	ipv6 := cfg.IPv6Support
	fx := &felixCell{
		cfg: felix.Config{
			RouteRefreshInterval: cfg.RouteRefreshInterval,
			IPForwarding:         cfg.IPForwarding,
			IPv6Support:          &ipv6,
			Registerer:           d.registry,
			Dataplane:            opts.Dataplane,
		},
		ds: ds, bgp: bgpc, nodeName: cfg.NodeName, log: log, fatal: d.fatal,
	}
	d.lc.append(fx)
	d.lc.append(&monitorCell{agg: d.health, ds: ds, dp: fx, nodeName: cfg.NodeName, interval: opts.ProbeInterval, log: log})
	d.lc.append(&agentCell{
		socket: cfg.AgentSocket,
		log:    log.With("component", "agent"),
		fatal:  d.fatal,
		opts: func() agent.Options {
			var bgpStatus agent.BGPStatus
			if bgpc != nil {
				bgpStatus = bgpc.c
			}
			return agent.Options{
				BGP:       bgpStatus,
				NodeName:  cfg.NodeName,
				Datastore: ds.ds,
				IPAM:      ipam.New(ds.ds, log.With("component", "ipam")),
				Dataplane: fx.f,
				Log:       log.With("component", "agent"),
				Metrics:   d.registry,
				MTU:       func() int { return d.startup.res.MTU },
				Health: func() (bool, bool) {
					s := d.health.Summary()
					return s.Live, s.Ready
				},
				Version: version.Version,
			}
		},
	})
	if cfg.Health.Enabled {
		d.healthS = &httpCell{name: "health", addr: cfg.Health.Addr(), handler: d.health.Handler(), log: log, fatal: d.fatal}
		d.lc.append(d.healthS)
	}
	if cfg.Metrics.Enabled {
		h := promhttp.HandlerFor(d.registry, promhttp.HandlerOpts{Registry: d.registry})
		d.metrics = &httpCell{name: "metrics", addr: cfg.Metrics.Addr(), handler: h, log: log, fatal: d.fatal}
		d.lc.append(d.metrics)
	}
	return d
}

func newRegistry(cfg config.Metrics) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	if cfg.GoMetrics {
		reg.MustRegister(collectors.NewGoCollector())
	}
	if cfg.ProcessMetrics {
		reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tabby_build_info",
		Help: "Always 1; the labels say which calico-node build is running.",
	}, []string{"version", "commit"})
	info.WithLabelValues(version.Version, version.Commit).Set(1)
	reg.MustRegister(info)
	return reg
}

// fatal ends Run: a part failed while running.
func (d *Daemon) fatal(err error) {
	d.fatalOnce.Do(func() { d.fatalCh <- err })
}

// Start starts every part in order; on failure the started ones are
// stopped again.
func (d *Daemon) Start(ctx context.Context) error {
	return d.lc.start(ctx)
}

// Stop stops the started parts in reverse order, within ShutdownTimeout.
func (d *Daemon) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.ShutdownTimeout)
	defer cancel()
	return d.lc.stop(ctx)
}

// Failed delivers the error of a part that failed while running.
func (d *Daemon) Failed() <-chan error { return d.fatalCh }

// Health is the aggregator behind /readiness and /liveness.
func (d *Daemon) Health() *health.Aggregator { return d.health }

// Registry is the Prometheus registry behind /metrics.
func (d *Daemon) Registry() *prometheus.Registry { return d.registry }

// HealthAddr and MetricsAddr are the bound addresses ("" when disabled or
// not started), useful with port 0.
func (d *Daemon) HealthAddr() string {
	if d.healthS == nil {
		return ""
	}
	return d.healthS.bound
}

func (d *Daemon) MetricsAddr() string {
	if d.metrics == nil {
		return ""
	}
	return d.metrics.bound
}

// Run starts the daemon, runs until ctx ends (SIGTERM) or a part fails, and
// stops it. It returns nil after a clean stop on ctx.
func Run(ctx context.Context, cfg config.Config, opts Options) error {
	d := New(cfg, opts)
	log := d.log
	log.Info("starting calico-node", "node", cfg.NodeName, "version", version.Version, "pid", os.Getpid())
	if err := d.Start(ctx); err != nil {
		if ctx.Err() != nil {
			log.Info("stopped while starting", "reason", context.Cause(ctx))
			return nil
		}
		return err
	}
	log.Info("calico-node started", "node", cfg.NodeName, "mtu", d.startup.res.MTU)
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: routes stay in the kernel", "reason", context.Cause(ctx))
	case runErr = <-d.Failed():
		log.Error("a part of calico-node failed, shutting down", "err", runErr)
	}
	stopErr := d.Stop()
	if stopErr != nil {
		log.Error("shutdown was not clean", "err", stopErr)
	} else {
		log.Info("calico-node stopped")
	}
	return errors.Join(runErr, stopErr)
}
