package etcd_test

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"testing"
	"time"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
)

// eventTimeout only keeps a broken test from hanging; events normally arrive
// in milliseconds.
const eventTimeout = 20 * time.Second

func next(t *testing.T, w datastore.Watcher) datastore.Event {
	t.Helper()
	select {
	case e, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch channel closed")
		}
		return e
	case <-time.After(eventTimeout):
		t.Fatal("no watch event")
	}
	return datastore.Event{}
}

func expectClosed(t *testing.T, w datastore.Watcher) {
	t.Helper()
	select {
	case e, ok := <-w.ResultChan():
		if ok {
			t.Fatalf("event %v %v after the end of the watch", e.Type, e.Err)
		}
	case <-time.After(eventTimeout):
		t.Fatal("watch channel not closed")
	}
}

func rev(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("revision %q: %v", s, err)
	}
	return n
}

func TestWatchAddModifyDelete(t *testing.T) {
	t.Parallel()
	s := etcdtest.NewStore(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, pool("before", "10.9.0.0/24")); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx, "IPPool", "")
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(ctx, "IPPool", "", list.Revision)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	created, err := s.Create(ctx, pool("p", "10.0.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	c := created.(*v3.IPPool)
	c.Spec.NATOutgoing = true
	updated, err := s.Update(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, v3.KeyOf(updated), ""); err != nil {
		t.Fatal(err)
	}

	e := next(t, w)
	if e.Type != datastore.Added || e.Object.GetName() != "p" || e.Revision != created.GetResourceVersion() ||
		e.Object.GetResourceVersion() != created.GetResourceVersion() || e.Object.GetUID() != created.GetUID() {
		t.Errorf("first event = %v %+v at %s; want Added p at %s", e.Type, e.Object, e.Revision, created.GetResourceVersion())
	}
	e = next(t, w)
	if e.Type != datastore.Modified || !e.Object.(*v3.IPPool).Spec.NATOutgoing || e.Revision != updated.GetResourceVersion() {
		t.Errorf("second event = %v %+v at %s; want Modified at %s", e.Type, e.Object, e.Revision, updated.GetResourceVersion())
	}
	e = next(t, w)
	if e.Type != datastore.Deleted {
		t.Fatalf("third event = %v, want Deleted", e.Type)
	}
	last := e.Object.(*v3.IPPool)
	if !last.Spec.NATOutgoing || last.Spec.CIDR != "10.0.0.0/24" || last.ResourceVersion != updated.GetResourceVersion() || last.UID != created.GetUID() {
		t.Errorf("deleted object = %+v, want the last stored state", last)
	}
	if rev(t, e.Revision) <= rev(t, updated.GetResourceVersion()) {
		t.Errorf("delete revision %s not after the update at %s", e.Revision, updated.GetResourceVersion())
	}

	// Resuming after the update sees only the delete.
	w2, err := s.Watch(ctx, "IPPool", "", updated.GetResourceVersion())
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	if e2 := next(t, w2); e2.Type != datastore.Deleted || e2.Revision != e.Revision {
		t.Errorf("resumed watch: %v at %s, want Deleted at %s", e2.Type, e2.Revision, e.Revision)
	}
}

func TestWatchFromNowAndNamespaceFilter(t *testing.T) {
	t.Parallel()
	s := etcdtest.NewStore(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, wep("a", "old", "n1")); err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(ctx, "WorkloadEndpoint", "a", "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// Events of namespace b, and of a namespace that merely starts with
	// "a", come first and must be filtered out.
	for _, r := range []v3.Resource{wep("b", "w1", "n1"), wep("ab", "w1", "n1"), wep("a", "w1", "n1"), wep("b", "w2", "n1"), wep("a", "w2", "n1")} {
		if _, err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"w1", "w2"} {
		e := next(t, w)
		if e.Type != datastore.Added || e.Object.GetNamespace() != "a" || e.Object.GetName() != want {
			t.Errorf("event = %v %s/%s, want Added a/%s", e.Type, e.Object.GetNamespace(), e.Object.GetName(), want)
		}
	}
}

func TestWatchCompacted(t *testing.T) {
	t.Parallel()
	s := etcdtest.NewStore(t)
	ctx := context.Background()
	first, err := s.Create(ctx, pool("p1", "10.0.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Create(ctx, pool("p2", "10.0.1.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client().Compact(ctx, rev(t, second.GetResourceVersion())); err != nil {
		t.Fatalf("compact: %v", err)
	}
	w, err := s.Watch(ctx, "IPPool", "", strconv.FormatInt(rev(t, first.GetResourceVersion())-1, 10))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	e := next(t, w)
	if e.Type != datastore.WatchError || !errors.Is(e.Err, datastore.ErrCompacted) {
		t.Fatalf("event = %v %v, want a WatchError wrapping ErrCompacted", e.Type, e.Err)
	}
	var de *datastore.Error
	if !errors.As(e.Err, &de) || de.Op != "watch" || de.Key.Kind != "IPPool" {
		t.Errorf("error %v is not a watch *datastore.Error for IPPool", e.Err)
	}
	expectClosed(t, w)
}

func TestWatchStopAndCancelCloseWithoutError(t *testing.T) {
	t.Parallel()
	s := etcdtest.NewStore(t)
	ctx := context.Background()

	w, err := s.Watch(ctx, "IPPool", "", "")
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()
	expectClosed(t, w)
	w.Stop() // again: no panic, no hang

	cctx, cancel := context.WithCancel(ctx)
	w2, err := s.Watch(cctx, "IPPool", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, pool("p", "10.0.0.0/24")); err != nil {
		t.Fatal(err)
	}
	if e := next(t, w2); e.Type != datastore.Added {
		t.Fatalf("event = %v", e.Type)
	}
	cancel()
	expectClosed(t, w2)
	w2.Stop()

	// Stop returns even when the consumer never read a full buffer of
	// events (from revision 0: the whole history).
	w4, err := s.Watch(ctx, "IPPool", "", "0")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := s.Create(ctx, pool("q"+strconv.Itoa(i), "10.1.0.0/24")); err != nil {
			t.Fatal(err)
		}
	}
	w4.Stop()
}

func TestWatchEndsWithErrorWhenTheStoreCloses(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	s := etcdtest.Connect(t, e.Endpoints()...)
	w, err := s.Watch(context.Background(), "IPPool", "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ev := next(t, w)
	if ev.Type != datastore.WatchError || ev.Err == nil {
		t.Fatalf("event = %v %v, want a WatchError", ev.Type, ev.Err)
	}
	expectClosed(t, w)
}

// Stopped and cancelled watches leave no goroutines behind, in this package
// or in the etcd client. Not parallel: it counts the process's goroutines.
func TestWatchLeavesNoGoroutines(t *testing.T) {
	s := etcdtest.NewStore(t)
	ctx := context.Background()
	if _, err := s.List(ctx, "IPPool", ""); err != nil { // connection up
		t.Fatal(err)
	}
	settle := func() int {
		// Let earlier goroutines finish exiting before taking the baseline.
		n := runtime.NumGoroutine()
		for range 50 {
			time.Sleep(20 * time.Millisecond)
			if m := runtime.NumGoroutine(); m == n {
				return n
			} else {
				n = m
			}
		}
		return n
	}
	base := settle()

	cctx, cancel := context.WithCancel(ctx)
	var ws []datastore.Watcher
	for i := range 10 {
		wctx := ctx
		if i%2 == 0 {
			wctx = cctx
		}
		w, err := s.Watch(wctx, "IPPool", "", "")
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	if _, err := s.Create(ctx, pool("p", "10.0.0.0/24")); err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		next(t, w)
	}
	cancel()
	for i, w := range ws {
		if i%2 == 1 {
			w.Stop()
		}
		expectClosed(t, w)
	}

	deadline := time.Now().Add(eventTimeout)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before the watches:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
