package health

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func TestStateTransitions(t *testing.T) {
	a := New(slog.New(slog.DiscardHandler))
	clock := time.Unix(1000, 0)
	a.now = func() time.Time { return clock }
	h := a.Handler()

	if code, _ := get(t, h, "/readiness"); code != http.StatusOK {
		t.Fatalf("no reporters: readiness %d, want 200", code)
	}

	ds := a.Register("datastore", Reports{Ready: true})
	loop := a.Register("felix", Reports{Live: true, Ready: true, Timeout: 10 * time.Second})

	code, body := get(t, h, "/readiness")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("fresh reporters: readiness %d, want 503", code)
	}
	if !strings.Contains(body, "datastore") || !strings.Contains(body, "non-ready") {
		t.Errorf("readiness body does not name the failing component:\n%s", body)
	}
	if code, _ := get(t, h, "/liveness"); code != http.StatusOK {
		t.Fatalf("fresh reporters are live: liveness %d, want 200", code)
	}

	ds.Report(true, true, "")
	if code, _ := get(t, h, "/readiness"); code != http.StatusServiceUnavailable {
		t.Fatalf("felix not ready yet: readiness %d, want 503", code)
	}
	loop.Report(true, true, "")
	if code, body := get(t, h, "/readiness"); code != http.StatusOK {
		t.Fatalf("all ready: readiness %d, want 200\n%s", code, body)
	}

	// A datastore blip: not ready, still live; then back.
	ds.Report(false, false, "etcd unreachable")
	code, body = get(t, h, "/readiness")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "etcd unreachable") {
		t.Fatalf("datastore down: readiness %d, want 503 with the detail\n%s", code, body)
	}
	if code, _ := get(t, h, "/liveness"); code != http.StatusOK {
		t.Fatalf("datastore reports readiness only, so liveness stays 200, got %d", code)
	}
	ds.Report(true, true, "")

	// A reporter that stops reporting times out on both counts.
	clock = clock.Add(11 * time.Second)
	code, body = get(t, h, "/liveness")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "timed out") {
		t.Fatalf("stale reporter: liveness %d, want 503 'timed out'\n%s", code, body)
	}
	loop.Report(true, true, "")
	if code, _ := get(t, h, "/liveness"); code != http.StatusOK {
		t.Fatalf("reporter back: liveness %d, want 200", code)
	}
	if s := a.Summary(); !s.Live || !s.Ready {
		t.Fatalf("summary %+v, want live and ready", s)
	}
}

func TestProbe(t *testing.T) {
	a := New(slog.New(slog.DiscardHandler))
	r := a.Register("felix", Reports{Ready: true})
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()

	if err := Probe(ctx, addr, "/liveness"); err != nil {
		t.Errorf("liveness probe: %v", err)
	}
	err := Probe(ctx, addr, "/readiness")
	if err == nil || !strings.Contains(err.Error(), "503 Service Unavailable") || !strings.Contains(err.Error(), "felix") {
		t.Errorf("readiness probe of a non-ready node: %v", err)
	}
	r.Report(true, true, "")
	if err := Probe(ctx, addr, "/readiness"); err != nil {
		t.Errorf("readiness probe of a ready node: %v", err)
	}
	_, port, _ := strings.Cut(addr, ":")
	if err := Probe(ctx, "0.0.0.0:"+port, "/readiness"); err != nil {
		t.Errorf("a wildcard host is probed on loopback: %v", err)
	}
}
