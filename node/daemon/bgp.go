package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tabbynet/tabby/bgp/controller"
	"github.com/tabbynet/tabby/felix"
	"github.com/tabbynet/tabby/node/health"
)

// bgpCell runs the BGP controller (CALICO_NETWORKING_BACKEND=bird). It
// starts before Felix, which takes its learned routes, and stops after it:
// the speaker stops gracefully (no Cease to graceful-restart peers) and
// nothing it withdraws on the way out reaches the kernel, so a restarting
// calico-node keeps forwarding.
type bgpCell struct {
	nodeName string
	ds       *datastoreCell
	agg      *health.Aggregator
	log      *slog.Logger
	fatal    func(error)
	// remoteRoutesPresent says whether routes learned by a previous run are
	// in the kernel (nil: assume not).
	remoteRoutesPresent func() (bool, error)
	// readyInterval is how often readiness is re-evaluated at the least;
	// it follows session changes as they happen.
	readyInterval time.Duration

	c      *controller.Controller
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (c *bgpCell) Name() string { return "bgp" }

func (c *bgpCell) Start(context.Context) error {
	restarting := false
	if c.remoteRoutesPresent != nil {
		has, err := c.remoteRoutesPresent()
		if err != nil {
			// Not knowing only costs the graceful-restart handshake.
			c.log.Warn("cannot tell whether this is a restart; starting BGP as a first boot", "err", err)
		}
		restarting = has
	}
	c.c = controller.New(controller.Config{
		NodeName:   c.nodeName,
		Datastore:  c.ds.ds,
		Log:        c.log,
		Restarting: restarting,
	})
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	rep := c.agg.Register("bgp", health.Reports{Ready: true})
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		if err := c.c.Run(ctx); err != nil {
			c.fatal(err)
		}
	}()
	go func() {
		defer c.wg.Done()
		// Event-driven (session changes, the end of the start-up grace);
		// readyInterval is only the safety net.
		c.c.WatchReadiness(ctx, c.readyInterval, func(ready bool, detail string) { rep.Report(true, ready, detail) })
	}()
	c.log.Info("BGP controller started", "restarting", restarting)
	return nil
}

func (c *bgpCell) Stop(context.Context) error {
	c.cancel()
	c.wg.Wait()
	return nil
}

// routes is Felix's source of remote routes (nil when BGP is off).
func (c *bgpCell) routes() felix.RemoteRouteSource {
	if c == nil || c.c == nil {
		return nil
	}
	return c.c
}
