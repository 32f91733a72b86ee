package daemon

import (
	"context"
	"log/slog"

	"github.com/tabbynet/tabby/felix"
)

// felixCell runs Felix. Stopping it ends its loop and leaves every route in
// the kernel: a restarting calico-node must not cut pods off, and the next
// Felix adopts the routes (they carry Tabby's protocol number).
type felixCell struct {
	cfg      felix.Config
	ds       *datastoreCell
	bgp      *bgpCell // nil when BGP is off; started before this cell
	nodeName string
	log      *slog.Logger
	fatal    func(error)

	f      *felix.Felix
	cancel context.CancelFunc
	done   chan struct{}
}

func (c *felixCell) Name() string { return "felix" }

func (c *felixCell) Start(context.Context) error {
	c.cfg.RemoteRoutes = c.bgp.routes()
	c.f = felix.New(c.cfg, c.ds.ds, c.nodeName, c.log)
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		if err := c.f.Run(ctx); err != nil {
			c.fatal(err)
		}
	}()
	return nil
}

func (c *felixCell) Stop(context.Context) error {
	c.cancel()
	<-c.done
	return nil
}

func (c *felixCell) inSync() bool { return c.f.InSync() }
