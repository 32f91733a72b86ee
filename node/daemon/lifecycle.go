package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Cell is one part of the daemon (Cilium's cells, reduced to what one
// binary needs): it is built with its dependencies, started in order and
// stopped in reverse order.
type Cell interface {
	Name() string
	// Start brings the part up. It must not block beyond that: long-running
	// work goes to a goroutine that Stop ends.
	Start(ctx context.Context) error
	// Stop releases what Start took. It is only called after a successful
	// Start.
	Stop(ctx context.Context) error
}

// lifecycle starts cells in order and stops the started ones in reverse.
type lifecycle struct {
	log     *slog.Logger
	cells   []Cell
	started []Cell
}

func (l *lifecycle) append(c Cell) { l.cells = append(l.cells, c) }

// start starts every cell; on a failure it stops those already started and
// returns the failure.
func (l *lifecycle) start(ctx context.Context) error {
	for _, c := range l.cells {
		t0 := time.Now()
		if err := c.Start(ctx); err != nil {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			return errors.Join(fmt.Errorf("start %s: %w", c.Name(), err), l.stop(stopCtx))
		}
		l.started = append(l.started, c)
		l.log.Debug("started", "cell", c.Name(), "took", time.Since(t0))
	}
	return nil
}

// stop stops the started cells, last first, carrying on past failures.
func (l *lifecycle) stop(ctx context.Context) error {
	var errs []error
	for i := len(l.started) - 1; i >= 0; i-- {
		c := l.started[i]
		if err := c.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", c.Name(), err))
		}
		l.log.Debug("stopped", "cell", c.Name())
	}
	l.started = nil
	return errors.Join(errs...)
}
