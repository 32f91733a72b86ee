package dataplane_test

import (
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tabbynet/tabby/felix/dataplane"
)

// testLogger writes into the test log and goes quiet after the test ends.
func testLogger(t testing.TB) *slog.Logger {
	w := &logWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type logWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func wl(dst, iface string) dataplane.Route {
	return dataplane.Route{Dst: pfx(dst), Iface: iface, Scope: dataplane.ScopeLink, Source: dataplane.SourceLocalWorkload}
}

func bh(dst string) dataplane.Route {
	return dataplane.Route{Dst: pfx(dst), Type: dataplane.Blackhole, Source: dataplane.SourceLocalBlock}
}

// state builds a State from routes; interfaces of device routes on cali*
// become workload interfaces.
func state(routes ...dataplane.Route) dataplane.State {
	s := dataplane.NewState()
	for _, r := range routes {
		s.AddRoute(r)
		if strings.HasPrefix(r.Iface, "cali") {
			s.AddIface(r.Iface)
		}
	}
	return s
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
