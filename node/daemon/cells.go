package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/backend"
	"github.com/tabbynet/tabby/datastore/etcd"
	"github.com/tabbynet/tabby/node/agent"
	"github.com/tabbynet/tabby/node/autodetect"
	"github.com/tabbynet/tabby/node/config"
	"github.com/tabbynet/tabby/node/health"
	"github.com/tabbynet/tabby/node/startup"
)

// embeddedEtcdCell runs a single-member etcd in this process
// (TABBY_EMBEDDED_ETCD_DIR): one-machine mode.
type embeddedEtcdCell struct {
	dir, addr string
	log       *slog.Logger
	fatal     func(error)

	e    *etcd.Embedded
	done chan struct{}
}

func (c *embeddedEtcdCell) Name() string { return "embedded-etcd" }

func (c *embeddedEtcdCell) Start(ctx context.Context) error {
	var opts []etcd.EmbeddedOption
	if c.addr != "" {
		opts = append(opts, etcd.WithClientAddress(c.addr))
	}
	e, err := etcd.StartEmbedded(ctx, c.dir, c.log, opts...)
	if err != nil {
		return err
	}
	c.e, c.done = e, make(chan struct{})
	c.log.Info("embedded etcd running", "dir", c.dir, "endpoints", strings.Join(e.Endpoints(), ","))
	go func() {
		select {
		case err := <-e.Err():
			c.fatal(fmt.Errorf("embedded etcd failed: %w", err))
		case <-c.done:
		}
	}()
	return nil
}

func (c *embeddedEtcdCell) Stop(context.Context) error {
	close(c.done)
	return c.e.Close()
}

// endpoints is what the datastore cell connects to, once started.
func (c *embeddedEtcdCell) endpoints() []string { return c.e.Endpoints() }

// datastoreCell opens the datastore and, with WAIT_FOR_DATASTORE, waits
// for it to answer.
type datastoreCell struct {
	cfg      datastore.Config
	wait     bool
	nodeName string
	embedded *embeddedEtcdCell // nil unless one-machine mode
	log      *slog.Logger
	maxWait  time.Duration // backoff cap between attempts

	ds datastore.Interface
}

func (c *datastoreCell) Name() string { return "datastore" }

func (c *datastoreCell) where() string {
	if c.cfg.Type == datastore.TypeEtcdV3 {
		return "etcd at " + strings.Join(c.cfg.Etcd.Endpoints, ",")
	}
	return c.cfg.Type
}

func (c *datastoreCell) Start(ctx context.Context) error {
	if c.embedded != nil {
		c.cfg.Etcd.Endpoints = c.embedded.endpoints()
	}
	ds, err := backend.New(c.cfg)
	if err != nil {
		return fmt.Errorf("open the datastore (%s): %w", c.where(), err)
	}
	// Any answer, "not found" included, proves the datastore is there.
	probe := func() (struct{}, error) {
		_, err := ds.Get(ctx, v3.Key{Kind: "Node", Name: c.nodeName})
		if err == nil || datastore.IsNotFound(err) {
			return struct{}{}, nil
		}
		if !errors.Is(err, datastore.ErrUnavailable) || !c.wait {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 500*time.Millisecond, c.maxWait
	_, err = backoff.Retry(ctx, probe, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, next time.Duration) {
			c.log.Warn("WAIT_FOR_DATASTORE=true: waiting for the datastore", "datastore", c.where(), "retryIn", next.Round(time.Millisecond), "err", err)
		}))
	if err != nil {
		ds.Close()
		hint := ""
		if errors.Is(err, datastore.ErrUnavailable) {
			hint = " (set WAIT_FOR_DATASTORE=true to wait for it)"
		}
		return fmt.Errorf("reach the datastore (%s): %w%s", c.where(), err, hint)
	}
	c.log.Info("datastore is reachable", "datastore", c.where())
	c.ds = ds
	return nil
}

func (c *datastoreCell) Stop(context.Context) error { return c.ds.Close() }

// startupCell registers the Node and the default pools.
type startupCell struct {
	cfg config.Config
	ds  *datastoreCell
	sys autodetect.System
	log *slog.Logger

	res startup.Result
}

func (c *startupCell) Name() string { return "startup" }

func (c *startupCell) Start(ctx context.Context) error {
	res, err := startup.Run(ctx, c.ds.ds, c.cfg, c.sys, c.log)
	if err != nil {
		return err
	}
	c.res = res
	return nil
}

func (c *startupCell) Stop(context.Context) error { return nil }

// monitorCell feeds the health aggregator: a periodic datastore probe and
// the dataplane's sync state. Both report readiness only: a datastore blip
// makes the node not ready, never not live, so the kubelet does not restart
// a calico-node that is waiting for etcd.
type monitorCell struct {
	agg      *health.Aggregator
	ds       *datastoreCell
	dp       *felixCell
	nodeName string
	interval time.Duration
	log      *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (c *monitorCell) Name() string { return "health-monitors" }

func (c *monitorCell) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	dsRep := c.agg.Register("datastore", health.Reports{Ready: true})
	dpRep := c.agg.Register("felix", health.Reports{Ready: true})
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		c.every(ctx, func() {
			_, err := c.ds.ds.Get(ctx, v3.Key{Kind: "Node", Name: c.nodeName})
			switch {
			case err == nil:
				dsRep.Report(true, true, "")
			case ctx.Err() != nil:
			case datastore.IsNotFound(err):
				dsRep.Report(true, false, fmt.Sprintf("this node's Node resource %q is gone: restart calico-node to register it again", c.nodeName))
			default:
				dsRep.Report(true, false, err.Error())
			}
		})
	}()
	go func() {
		defer c.wg.Done()
		// The dataplane flips to in-sync quickly after start; poll it more
		// often than the datastore so readiness follows promptly.
		c.everyInterval(ctx, min(c.interval, time.Second), func() {
			if c.dp.inSync() {
				dpRep.Report(true, true, "")
			} else {
				dpRep.Report(true, false, "dataplane not in sync with the datastore yet")
			}
		})
	}()
	return nil
}

func (c *monitorCell) every(ctx context.Context, f func()) { c.everyInterval(ctx, c.interval, f) }

func (c *monitorCell) everyInterval(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		f()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *monitorCell) Stop(context.Context) error {
	c.cancel()
	c.wg.Wait()
	return nil
}

// agentCell serves the agent API on its unix socket.
type agentCell struct {
	socket string
	opts   func() agent.Options // built at start, when the dependencies are up
	log    *slog.Logger
	fatal  func(error)

	srv  *agent.Server
	done chan error
}

func (c *agentCell) Name() string { return "agent" }

func (c *agentCell) Start(context.Context) error {
	srv, err := agent.New(c.opts())
	if err != nil {
		return err
	}
	l, err := agent.Listen(c.socket)
	if err != nil {
		return err
	}
	c.srv, c.done = srv, make(chan error, 1)
	go func() {
		err := srv.Serve(l)
		if err != nil {
			c.fatal(err)
		}
		c.done <- err
	}()
	c.log.Info("agent API listening", "socket", c.socket)
	return nil
}

func (c *agentCell) Stop(ctx context.Context) error {
	c.srv.Stop(ctx)
	<-c.done
	if err := os.Remove(c.socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the agent socket: %w", err)
	}
	return nil
}

// httpCell serves one HTTP endpoint (health or metrics).
type httpCell struct {
	name    string
	addr    string
	handler http.Handler
	log     *slog.Logger
	fatal   func(error)

	srv   *http.Server
	bound string
	done  chan struct{}
}

func (c *httpCell) Name() string { return c.name }

func (c *httpCell) Start(context.Context) error {
	l, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.addr, err)
	}
	c.bound = l.Addr().String()
	c.srv = &http.Server{Handler: c.handler, ReadHeaderTimeout: 10 * time.Second}
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		if err := c.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.fatal(fmt.Errorf("%s server on %s: %w", c.name, c.bound, err))
		}
	}()
	c.log.Info("serving", "server", c.name, "address", c.bound)
	return nil
}

func (c *httpCell) Stop(ctx context.Context) error {
	err := c.srv.Shutdown(ctx)
	<-c.done
	return err
}
