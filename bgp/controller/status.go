package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tabbynet/tabby/api/agentpb"
	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/bgp"
)

// PeerStatus reports the speaker's peers; an error before it runs.
func (c *Controller) PeerStatus(ctx context.Context) ([]bgp.PeerStatus, error) {
	c.mu.Lock()
	sp := c.sp
	c.mu.Unlock()
	if sp == nil {
		return nil, errNotRunning
	}
	return sp.PeerStatus(ctx)
}

// Sessions is PeerStatus without the costly route counts.
func (c *Controller) Sessions(ctx context.Context) ([]bgp.PeerStatus, error) {
	c.mu.Lock()
	sp := c.sp
	c.mu.Unlock()
	if sp == nil {
		return nil, errNotRunning
	}
	return sp.Sessions(ctx)
}

// Peers answers the agent's Status RPC (node/agent's BGPStatus hook).
func (c *Controller) Peers(ctx context.Context) []*agentpb.BGPPeerStatus {
	st, err := c.PeerStatus(ctx)
	if err != nil {
		return nil
	}
	out := make([]*agentpb.BGPPeerStatus, 0, len(st))
	for _, p := range st {
		out = append(out, ToProto(p))
	}
	return out
}

// State is "running" once the speaker runs, "starting" before.
func (c *Controller) State() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sp == nil {
		return "starting"
	}
	return "running"
}

// Ready applies Calico's BGP readiness rule (bgp.Readiness) to the
// speaker's peers.
func (c *Controller) Ready(ctx context.Context) (bool, string) {
	c.mu.Lock()
	started, lastErr := c.started, c.lastErr
	c.mu.Unlock()
	st, err := c.Sessions(ctx)
	if err != nil {
		if lastErr != nil {
			return false, fmt.Sprintf("BGP is not ready: %v", lastErr)
		}
		return false, "BGP is not ready: " + err.Error()
	}
	ready, detail := bgp.Readiness(st, time.Since(started), c.cfg.ReadinessGrace)
	if !ready {
		detail = "BGP is not ready: " + detail
	}
	return ready, detail
}

// readinessSpacing is the least time between two readiness evaluations
// of WatchReadiness: a burst of session events (a peer flapping, a
// hundred mesh sessions coming up at once) costs a few ListPeer calls a
// second at most, and a change is still seen well within a second.
const readinessSpacing = 250 * time.Millisecond

// WatchReadiness hands Ready's verdict to report at once, then again
// whenever it may have changed: a session changed state, a peer came or
// went, the speaker started, stopped or failed to, or the start-up grace
// (Config.ReadinessGrace) ended. It also re-evaluates every interval (10 s
// when not positive) as a safety net. Evaluations are at least
// readinessSpacing apart. It returns when ctx ends.
func (c *Controller) WatchReadiness(ctx context.Context, interval time.Duration, report func(ready bool, detail string)) {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	safety := time.NewTicker(interval)
	defer safety.Stop()
	graceEnd := time.NewTimer(time.Hour)
	graceEnd.Stop()
	defer graceEnd.Stop()
	for {
		last := time.Now()
		report(c.Ready(ctx))

		c.mu.Lock()
		sp, started := c.sp, c.started
		c.mu.Unlock()
		var sessions <-chan struct{}
		graceEnd.Stop()
		if sp != nil {
			sessions = sp.SessionChanges()
			if left := time.Until(started.Add(c.cfg.ReadinessGrace)); left > 0 {
				// The rule changes then (one peer up is enough), with no
				// session event to say so.
				graceEnd.Reset(left)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-sessions:
		case <-c.readyKick:
		case <-graceEnd.C:
		case <-safety.C:
		}
		if wait := readinessSpacing - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// ToProto converts a peer's status for the agent API. Info is BIRD's
// wording, which `calicoctl node status` prints: the state, "Passive" for a
// passive session waiting for its peer, then the last error.
func ToProto(p bgp.PeerStatus) *agentpb.BGPPeerStatus {
	out := &agentpb.BGPPeerStatus{
		Address:          p.Address.String(),
		Type:             string(p.Type),
		State:            p.State,
		Info:             Info(p),
		LastError:        p.LastError,
		RoutesReceived:   p.RoutesReceived,
		RoutesAccepted:   p.RoutesAccepted,
		RoutesAdvertised: p.RoutesAdvertised,
		Asn:              p.ASN,
	}
	if !p.Since.IsZero() {
		out.SinceUnix = p.Since.Unix()
	}
	return out
}

// Info renders the INFO column: "Established", "Active Socket: Connection
// refused", "Passive".
func Info(p bgp.PeerStatus) string {
	if p.Established() {
		return bgp.StateEstablished
	}
	state := p.State
	if p.Passive && (state == bgp.StateActive || state == bgp.StateIdle) {
		state = "Passive"
	}
	if p.LastError != "" {
		return state + " " + p.LastError
	}
	return state
}

// ReadPassword resolves a BGP password for the etcd datastore: an inline
// value, or the first line of a file read now (so a rotated file is picked
// up on the next recompute). Secrets need the Kubernetes datastore.
func ReadPassword(pw *v3.BGPPassword) (string, error) {
	switch {
	case pw.SecretKeyRef != nil:
		return "", fmt.Errorf("secretKeyRef %s/%s needs the Kubernetes datastore; with etcd use password.value or password.file",
			pw.SecretKeyRef.Name, pw.SecretKeyRef.Key)
	case pw.File != "":
		b, err := os.ReadFile(pw.File)
		if err != nil {
			return "", fmt.Errorf("read password file: %w", err)
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			return "", fmt.Errorf("password file %s is empty", pw.File)
		}
		return s, nil
	case pw.Value != "":
		return pw.Value, nil
	default:
		return "", errors.New("password has neither value, file nor secretKeyRef")
	}
}
