package etcdtest

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd"
)

// startTimeout bounds a start on a loaded machine; a healthy start takes well
// under a second.
const startTimeout = 30 * time.Second

// Start runs an embedded etcd in t.TempDir() and stops it when the test ends.
func Start(t testing.TB) *etcd.Embedded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	e, err := etcd.StartEmbedded(ctx, t.TempDir(), Logger(t))
	if err != nil {
		t.Fatalf("start embedded etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("stop embedded etcd: %v", err)
		}
	})
	return e
}

// NewStore starts an embedded etcd and returns a Store connected to it; both
// are closed when the test ends (the store first).
func NewStore(t testing.TB) *etcd.Store {
	t.Helper()
	return Connect(t, Start(t).Endpoints()...)
}

// Connect returns a Store on the given endpoints, closed when the test ends.
func Connect(t testing.TB, endpoints ...string) *etcd.Store {
	t.Helper()
	s, err := etcd.New(datastore.EtcdConfig{Endpoints: endpoints})
	if err != nil {
		t.Fatalf("connect to etcd at %v: %v", endpoints, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close etcd store: %v", err)
		}
	})
	return s
}

// Logger returns a logger that writes into the test's log, and stops writing
// once the test's cleanups have run (a late log line from a background
// goroutine must not panic the test binary).
func Logger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) }) // registered first, so runs last
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}
