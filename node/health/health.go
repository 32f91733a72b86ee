// Package health aggregates the liveness and readiness of calico-node's
// parts and serves them as Felix does: GET /liveness and GET /readiness on
// the health port (9099), 200 with a table of components when good, 503
// with the same table when not.
//
// Each part registers a Reporter saying which of the two it reports and
// how long a report stays valid; the overall state is good only when every
// reporter of that kind says so, within its timeout. The package knows no
// part by name: the daemon registers "datastore" and "felix", and a later
// BGP speaker registers its own reporter the same way (the hook for
// Calico's bird-ready). It does no I/O of its own besides answering HTTP.
package health

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Aggregator combines reporters. It is safe for concurrent use.
type Aggregator struct {
	log *slog.Logger
	now func() time.Time

	mu        sync.Mutex
	reporters map[string]*Reporter
	last      *Summary
}

// New returns an empty aggregator: live and ready until someone registers.
func New(log *slog.Logger) *Aggregator {
	return &Aggregator{log: log, now: time.Now, reporters: map[string]*Reporter{}}
}

// Reports says what a reporter reports and for how long a report holds.
type Reports struct {
	Live  bool
	Ready bool
	// Timeout, when not zero, makes a reporter that has not reported for
	// that long count as failing: a stuck loop is noticed.
	Timeout time.Duration
}

// Reporter is one part's slot. A new reporter is live and not ready.
type Reporter struct {
	agg     *Aggregator
	name    string
	reports Reports

	live, ready bool
	detail      string
	at          time.Time
}

// Register adds (or replaces) the reporter called name.
func (a *Aggregator) Register(name string, reports Reports) *Reporter {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := &Reporter{agg: a, name: name, reports: reports, live: true, at: a.now()}
	a.reporters[name] = r
	return r
}

// Report records the part's current state; detail says why it is not
// live or ready (shown in the HTTP body and the logs).
func (r *Reporter) Report(live, ready bool, detail string) {
	a := r.agg
	a.mu.Lock()
	changed := r.live != live || r.ready != ready || r.detail != detail
	r.live, r.ready, r.detail, r.at = live, ready, detail, a.now()
	a.mu.Unlock()
	if changed {
		a.log.Info("health of component changed", "reporter", r.name, "live", live, "ready", ready, "detail", detail)
	}
}

// Component is one reporter's line of a summary.
type Component struct {
	Name      string
	Timeout   time.Duration
	Liveness  string // "-" when not reported, "live", "non-live", "timed out"
	Readiness string // "-" when not reported, "ready", "non-ready", "timed out"
	Detail    string
}

// Summary is the overall state.
type Summary struct {
	Live, Ready bool
	Components  []Component
}

// Summary computes the overall state now, logging when it changed.
func (a *Aggregator) Summary() Summary {
	a.mu.Lock()
	s := Summary{Live: true, Ready: true}
	now := a.now()
	for _, r := range a.reporters {
		timedOut := r.reports.Timeout > 0 && now.Sub(r.at) > r.reports.Timeout
		c := Component{Name: r.name, Timeout: r.reports.Timeout, Liveness: "-", Readiness: "-", Detail: r.detail}
		if r.reports.Live {
			c.Liveness = verdict(r.live, timedOut, "live")
			s.Live = s.Live && r.live && !timedOut
		}
		if r.reports.Ready {
			c.Readiness = verdict(r.ready, timedOut, "ready")
			s.Ready = s.Ready && r.ready && !timedOut
		}
		s.Components = append(s.Components, c)
	}
	sort.Slice(s.Components, func(i, j int) bool { return s.Components[i].Name < s.Components[j].Name })
	changed := a.last == nil || a.last.Live != s.Live || a.last.Ready != s.Ready
	a.last = &s
	a.mu.Unlock()
	if changed {
		a.log.Info("overall health changed", "live", s.Live, "ready", s.Ready)
	}
	return s
}

func verdict(ok, timedOut bool, good string) string {
	switch {
	case timedOut:
		return "timed out"
	case ok:
		return good
	}
	return "non-" + good
}

// Table renders the components as Felix's health endpoint does.
func (s Summary) Table() string {
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "COMPONENT\tTIMEOUT\tLIVENESS\tREADINESS\tDETAIL")
	for _, c := range s.Components {
		timeout := "-"
		if c.Timeout > 0 {
			timeout = c.Timeout.String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", c.Name, timeout, c.Liveness, c.Readiness, c.Detail)
	}
	w.Flush()
	return b.String()
}

// Handler serves /liveness and /readiness.
func (a *Aggregator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/liveness", func(w http.ResponseWriter, _ *http.Request) {
		s := a.Summary()
		respond(w, s.Live, s)
	})
	mux.HandleFunc("/readiness", func(w http.ResponseWriter, _ *http.Request) {
		s := a.Summary()
		respond(w, s.Ready, s)
	})
	return mux
}

func respond(w http.ResponseWriter, good bool, s Summary) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if good {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = w.Write([]byte(s.Table()))
}

// Probe asks a running calico-node's health endpoint (host:port) whether it
// is live (path "/liveness") or ready ("/readiness"), for exec probes such
// as Calico's `calico-node -felix-ready`. A wildcard host is probed on
// loopback. The error carries the component table when the answer is no.
func Probe(ctx context.Context, hostPort, path string) error {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return fmt.Errorf("health endpoint %q: %w", hostPort, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	url := "http://" + net.JoinHostPort(host, port) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("calico-node health endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("%s answered %s:\n%s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
