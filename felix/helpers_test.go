package felix_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd"
	"github.com/tabbynet/tabby/felix"
)

// waitFor is how long a test waits for something that normally takes
// milliseconds before it fails: a failure deadline, not a measurement.
const waitFor = 30 * time.Second

// logRecorder is a slog handler that writes into the test log and lets a
// test wait for a message, so a test can know that the loop has made a
// decision instead of sleeping.
type logRecorder struct {
	t     testing.TB
	inner slog.Handler
	attrs []slog.Attr
	st    *logState
}

type logState struct {
	mu   sync.Mutex
	msgs []string
	done bool
	ch   chan struct{} // closed and replaced on each message
}

func newLog(t testing.TB) (*slog.Logger, *logRecorder) {
	st := &logState{ch: make(chan struct{})}
	r := &logRecorder{t: t, st: st}
	r.inner = slog.NewTextHandler(testWriter{r}, &slog.HandlerOptions{Level: slog.LevelDebug})
	t.Cleanup(func() { st.mu.Lock(); st.done = true; st.mu.Unlock() })
	return slog.New(r), r
}

type testWriter struct{ r *logRecorder }

func (w testWriter) Write(p []byte) (int, error) {
	w.r.st.mu.Lock()
	done := w.r.st.done
	w.r.st.mu.Unlock()
	if !done {
		w.r.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(ctx context.Context, rec slog.Record) error {
	r.st.mu.Lock()
	r.st.msgs = append(r.st.msgs, rec.Message)
	close(r.st.ch)
	r.st.ch = make(chan struct{})
	r.st.mu.Unlock()
	return r.inner.Handle(ctx, rec)
}
func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.inner = r.inner.WithAttrs(as)
	return &c
}
func (r *logRecorder) WithGroup(name string) slog.Handler {
	c := *r
	c.inner = r.inner.WithGroup(name)
	return &c
}

// waitMessage waits until a log message containing s has been logged.
func (r *logRecorder) waitMessage(t testing.TB, s string) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		r.st.mu.Lock()
		for _, m := range r.st.msgs {
			if strings.Contains(m, s) {
				r.st.mu.Unlock()
				return
			}
		}
		ch := r.st.ch
		r.st.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no log message containing %q within %v", s, waitFor)
		}
	}
}

// eventually polls cond until it holds; on timeout it fails with cond's
// last description of what it saw.
func eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last saw:\n%s", what, waitFor, saw)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runFelix runs f until the test ends.
func runFelix(t testing.TB, f *felix.Felix) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("felix run: %v", err)
		}
	})
}

func waitInSync(t testing.TB, f *felix.Felix) {
	t.Helper()
	eventually(t, "felix in sync", func() (bool, string) { return f.InSync(), "not in sync" })
}

// unreachableStore is a real etcd client pointed at a loopback port where
// nothing listens.
func unreachableStore(t testing.TB) datastore.Interface {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s, err := etcd.New(datastore.EtcdConfig{Endpoints: []string{"http://" + addr},
		DialTimeout: 200 * time.Millisecond, RequestTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func wep(ns, name, node, container, iface string, ips ...string) *v3.WorkloadEndpoint {
	return &v3.WorkloadEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v3.WorkloadEndpointSpec{
			Orchestrator: "k8s", Node: node, ContainerID: container, Pod: name, Endpoint: "eth0",
			InterfaceName: iface, IPNetworks: ips,
		},
	}
}

func affinity(node, cidr string) *v3.BlockAffinity {
	return &v3.BlockAffinity{
		ObjectMeta: metav1.ObjectMeta{Name: node + "-" + strings.NewReplacer(".", "-", "/", "-", ":", "-").Replace(cidr)},
		Spec:       v3.BlockAffinitySpec{Node: node, CIDR: cidr, State: v3.AffinityStateConfirmed, Type: "host"},
	}
}

func create(t testing.TB, ds datastore.Interface, r v3.Resource) v3.Resource {
	t.Helper()
	out, err := ds.Create(context.Background(), r)
	if err != nil {
		t.Fatalf("create %s: %v", v3.Describe(r), err)
	}
	return out
}

func del(t testing.TB, ds datastore.Interface, r v3.Resource) {
	t.Helper()
	if _, err := ds.Delete(context.Background(), v3.KeyOf(r), ""); err != nil {
		t.Fatalf("delete %s: %v", v3.Describe(r), err)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
