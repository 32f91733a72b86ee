package lab

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// pollInterval is how often waitFor retries; short, because what is waited
// for (a socket, a session, routes in a kernel) usually takes well under a
// second and the lab's run time is its users' waiting time.
const pollInterval = 50 * time.Millisecond

type permanentError struct{ error }

func (p permanentError) Unwrap() error { return p.error }

// permanent marks an error that no retry can fix (the daemon exited).
func permanent(err error) error { return permanentError{err} }

// waitFor retries check until it returns nil, returns a permanent error,
// ctx ends or limit passes; the error then says what was last wrong.
func waitFor(ctx context.Context, limit time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		var p permanentError
		if errors.As(err, &p) {
			return p.error
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}
