package syncer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
)

// waitTimeout only keeps a broken test from hanging.
const waitTimeout = 30 * time.Second

func pool(name string) *v3.IPPool {
	return &v3.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v3.IPPoolSpec{CIDR: "10.0.0.0/24"}}
}

func wep(ns, name string) *v3.WorkloadEndpoint {
	return &v3.WorkloadEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v3.WorkloadEndpointSpec{Node: "n1"}}
}

// recorder is a consumer that remembers every call, checks that calls never
// overlap, and lets the test wait for a condition on what it has seen.
type recorder struct {
	t        *testing.T
	inCall   atomic.Bool
	mu       sync.Mutex
	cond     *sync.Cond
	updates  []Update
	inSync   int
	syncedAt int  // len(updates) when OnInSync was called
	returned bool // Run has returned: any call now is a bug
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{t: t}
	r.cond = sync.NewCond(&r.mu)
	return r
}

func (r *recorder) enter() {
	if !r.inCall.CompareAndSwap(false, true) {
		r.t.Error("callbacks called concurrently")
	}
}

func (r *recorder) OnUpdates(us []Update) {
	r.enter()
	defer r.inCall.Store(false)
	if len(us) == 0 {
		r.t.Error("OnUpdates with no updates")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.returned {
		r.t.Error("OnUpdates after Run returned")
	}
	r.updates = append(r.updates, us...)
	r.cond.Broadcast()
}

func (r *recorder) OnInSync() {
	r.enter()
	defer r.inCall.Store(false)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.returned {
		r.t.Error("OnInSync after Run returned")
	}
	r.inSync++
	r.syncedAt = len(r.updates)
	r.cond.Broadcast()
}

// waitFor blocks until ok (called under the lock) holds.
func (r *recorder) waitFor(what string, ok func() bool) {
	r.t.Helper()
	timer := time.AfterFunc(waitTimeout, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(waitTimeout)
	r.mu.Lock()
	defer r.mu.Unlock()
	for !ok() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s; updates so far:\n%s", what, describe(r.updates))
		}
		r.cond.Wait()
	}
}

// waitForKey waits until an update of this type for this name arrives at or
// after index from, and returns the index after it.
func (r *recorder) waitForKey(from int, t datastore.EventType, name string) int {
	r.t.Helper()
	var at int
	r.waitFor(fmt.Sprintf("%v %s", t, name), func() bool {
		for i := from; i < len(r.updates); i++ {
			if u := r.updates[i]; u.Type == t && u.Key.Name == name {
				at = i + 1
				return true
			}
		}
		return false
	})
	return at
}

func (r *recorder) since(i int) []Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Update(nil), r.updates[i:]...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.updates)
}

func describe(us []Update) string {
	var lines []string
	for _, u := range us {
		lines = append(lines, fmt.Sprintf("%v %v", u.Type, u.Key))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// start runs a syncer until the test ends and returns its recorder.
func start(t *testing.T, ds datastore.Interface, kinds []string, tune func(*Syncer)) *recorder {
	rec := newRecorder(t)
	s := New(ds, kinds, rec, etcdtest.Logger(t))
	if tune != nil {
		tune(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
		rec.mu.Lock()
		rec.returned = true
		rec.mu.Unlock()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Error("Run did not return after cancellation")
		}
	})
	return rec
}

func mustCreate(t *testing.T, s *etcd.Store, r v3.Resource) v3.Resource {
	t.Helper()
	out, err := s.Create(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSnapshotInSyncAndLiveUpdates(t *testing.T) {
	t.Parallel()
	s := etcdtest.NewStore(t)
	ctx := context.Background()
	mustCreate(t, s, pool("p1"))
	mustCreate(t, s, pool("p2"))
	w := mustCreate(t, s, wep("ns1", "w1"))

	// Node has no resources: an empty snapshot still counts towards sync.
	rec := start(t, s, []string{"IPPool", "WorkloadEndpoint", "Node", "IPPool"}, nil)
	rec.waitFor("in sync", func() bool { return rec.inSync == 1 })

	snap := rec.since(0)
	if got, want := describe(snap), describe([]Update{
		{Type: datastore.Added, Key: v3.Key{Kind: "IPPool", Name: "p1"}},
		{Type: datastore.Added, Key: v3.Key{Kind: "IPPool", Name: "p2"}},
		{Type: datastore.Added, Key: v3.Key{Kind: "WorkloadEndpoint", Namespace: "ns1", Name: "w1"}},
	}); got != want {
		t.Errorf("snapshot:\n%s\nwant:\n%s", got, want)
	}
	if rec.syncedAt != len(snap) {
		t.Errorf("OnInSync after %d updates, the snapshot has %d", rec.syncedAt, len(snap))
	}
	for _, u := range snap {
		if u.Resource == nil || v3.KeyOf(u.Resource) != u.Key || u.Resource.GetResourceVersion() == "" {
			t.Errorf("snapshot update %v carries %+v", u.Key, u.Resource)
		}
	}

	n := rec.count()
	p3 := mustCreate(t, s, pool("p3"))
	got, err := s.Get(ctx, v3.Key{Kind: "IPPool", Name: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	got.(*v3.IPPool).Spec.Disabled = true
	p1, err := s.Update(ctx, got)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, v3.KeyOf(w), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, v3.KeyOf(p3), ""); err != nil {
		t.Fatal(err)
	}
	rec.waitForKey(n, datastore.Deleted, "w1")
	rec.waitForKey(n, datastore.Deleted, "p3")

	// IPPool updates arrive in datastore order; the WEP's relative position
	// is not defined.
	var pools []string
	for _, u := range rec.since(n) {
		switch u.Type {
		case datastore.Deleted:
			if u.Resource != nil {
				t.Errorf("Deleted %v carries a resource", u.Key)
			}
		default:
			if u.Resource == nil {
				t.Errorf("%v %v carries no resource", u.Type, u.Key)
			}
		}
		if u.Key.Kind == "IPPool" {
			pools = append(pools, fmt.Sprintf("%v %s", u.Type, u.Key.Name))
			if u.Type == datastore.Modified && (u.Resource.GetResourceVersion() != p1.GetResourceVersion() || !u.Resource.(*v3.IPPool).Spec.Disabled) {
				t.Errorf("Modified p1 = %+v, want %+v", u.Resource, p1)
			}
		}
	}
	if got, want := strings.Join(pools, ", "), "Added p3, Modified p1, Deleted p3"; got != want {
		t.Errorf("live IPPool updates: %s, want %s", got, want)
	}
	if rec.inSync != 1 {
		t.Errorf("OnInSync called %d times", rec.inSync)
	}
}

func TestNoKindsIsInSyncAtOnce(t *testing.T) {
	t.Parallel()
	rec := start(t, etcdtest.NewStore(t), nil, nil)
	rec.waitFor("in sync", func() bool { return rec.inSync == 1 })
}

// The syncer's connection to etcd drops; meanwhile resources change and etcd
// compacts its history, so the watch cannot resume. The syncer must re-list
// and deliver exactly the difference: nothing for what did not change.
func TestResyncAfterCompactionDeliversOnlyTheDifference(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	direct := etcdtest.Connect(t, e.Endpoints()...)
	proxy := etcdtest.NewProxy(t, e.Endpoints()[0])
	viaProxy := etcdtest.Connect(t, proxy.Endpoint())
	ctx := context.Background()

	for _, name := range []string{"keep", "change", "gone"} {
		mustCreate(t, direct, pool(name))
	}
	mustCreate(t, direct, wep("ns1", "w-keep"))

	var (
		mu      sync.Mutex
		relists = map[string][]error{}
	)
	rec := start(t, viaProxy, []string{"IPPool", "WorkloadEndpoint"}, func(s *Syncer) {
		s.onRelist = func(kind string, cause error) {
			mu.Lock()
			relists[kind] = append(relists[kind], cause)
			mu.Unlock()
		}
	})
	rec.waitFor("in sync", func() bool { return rec.inSync == 1 })
	mustCreate(t, direct, pool("live"))
	rec.waitForKey(0, datastore.Added, "live")

	proxy.Disconnect()
	mark := rec.count()
	cur, err := direct.Get(ctx, v3.Key{Kind: "IPPool", Name: "change"})
	if err != nil {
		t.Fatal(err)
	}
	cur.(*v3.IPPool).Spec.NATOutgoing = true
	changed, err := direct.Update(ctx, cur)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Delete(ctx, v3.Key{Kind: "IPPool", Name: "gone"}, ""); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, direct, pool("new"))
	last := mustCreate(t, direct, wep("ns1", "w-new"))
	var rev int64
	fmt.Sscan(last.GetResourceVersion(), &rev)
	if _, err := direct.Client().Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact: %v", err)
	}
	if got := rec.count(); got != mark {
		t.Fatalf("updates arrived while disconnected: %s", describe(rec.since(mark)))
	}
	proxy.Reconnect()

	// A write after the resync marks the end of what it delivered.
	rec.waitForKey(mark, datastore.Added, "w-new")
	rec.waitForKey(mark, datastore.Added, "new")
	mustCreate(t, direct, pool("sentinel"))
	end := rec.waitForKey(mark, datastore.Added, "sentinel")

	got := rec.since(mark)[:end-mark]
	var withoutSentinel []Update
	for _, u := range got {
		if u.Key.Name != "sentinel" {
			withoutSentinel = append(withoutSentinel, u)
		}
	}
	want := []Update{
		{Type: datastore.Modified, Key: v3.Key{Kind: "IPPool", Name: "change"}},
		{Type: datastore.Deleted, Key: v3.Key{Kind: "IPPool", Name: "gone"}},
		{Type: datastore.Added, Key: v3.Key{Kind: "IPPool", Name: "new"}},
		{Type: datastore.Added, Key: v3.Key{Kind: "WorkloadEndpoint", Namespace: "ns1", Name: "w-new"}},
	}
	if describe(withoutSentinel) != describe(want) {
		t.Errorf("resync delivered:\n%s\nwant exactly:\n%s", describe(withoutSentinel), describe(want))
	}
	for _, u := range withoutSentinel {
		if u.Key.Name == "change" && (u.Resource.GetResourceVersion() != changed.GetResourceVersion() || !u.Resource.(*v3.IPPool).Spec.NATOutgoing) {
			t.Errorf("Modified change = %+v, want %+v", u.Resource, changed)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	for _, kind := range []string{"IPPool", "WorkloadEndpoint"} {
		if len(relists[kind]) == 0 || !errors.Is(relists[kind][0], datastore.ErrCompacted) {
			t.Errorf("%s re-listed for %v, want first because of ErrCompacted", kind, relists[kind])
		}
	}
	if rec.inSync != 1 {
		t.Errorf("OnInSync called %d times", rec.inSync)
	}
}

// With the datastore unreachable at start, lists fail and are retried; the
// syncer comes into sync once the datastore is back.
func TestListFailuresAreRetried(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	direct := etcdtest.Connect(t, e.Endpoints()...)
	mustCreate(t, direct, pool("p1"))
	proxy := etcdtest.NewProxy(t, e.Endpoints()[0])
	proxy.Disconnect()
	viaProxy, err := etcd.New(datastore.EtcdConfig{Endpoints: []string{proxy.Endpoint()}, RequestTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { viaProxy.Close() })

	failures := make(chan error, 100)
	rec := start(t, viaProxy, []string{"IPPool"}, func(s *Syncer) {
		s.onRelist = func(_ string, cause error) {
			select {
			case failures <- cause:
			default:
			}
		}
	})
	select {
	case err := <-failures:
		if !errors.Is(err, datastore.ErrUnavailable) {
			t.Errorf("list failed with %v, want ErrUnavailable", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no failed list reported")
	}
	rec.mu.Lock()
	if rec.inSync != 0 || len(rec.updates) != 0 {
		t.Errorf("consumer told something while the datastore was down: inSync=%d updates=%d", rec.inSync, len(rec.updates))
	}
	rec.mu.Unlock()
	proxy.Reconnect()
	rec.waitFor("in sync", func() bool { return rec.inSync == 1 })
	if got := describe(rec.since(0)); got != "Added IPPool(p1)" {
		t.Errorf("snapshot = %s", got)
	}
}

func TestDiff(t *testing.T) {
	mk := func(name, rv string) v3.Resource {
		p := pool(name)
		p.ResourceVersion = rv
		return p
	}
	key := func(name string) v3.Key { return v3.Key{Kind: "IPPool", Name: name} }
	cache := map[v3.Key]string{key("same"): "5", key("changed"): "6", key("gone-b"): "7", key("gone-a"): "8"}
	got := diff(cache, []v3.Resource{mk("changed", "9"), mk("new", "10"), mk("same", "5")})
	var lines []string
	for _, u := range got {
		lines = append(lines, fmt.Sprintf("%v %s %v", u.Type, u.Key.Name, u.Resource != nil))
	}
	want := "Modified changed true, Added new true, Deleted gone-a false, Deleted gone-b false"
	if s := strings.Join(lines, ", "); s != want {
		t.Errorf("diff = %s\nwant   %s", s, want)
	}
	wantCache := map[v3.Key]string{key("same"): "5", key("changed"): "9", key("new"): "10"}
	if fmt.Sprint(cache) != fmt.Sprint(wantCache) {
		t.Errorf("cache = %v, want %v", cache, wantCache)
	}
	if again := diff(cache, []v3.Resource{mk("changed", "9"), mk("new", "10"), mk("same", "5")}); len(again) != 0 {
		t.Errorf("diff of an unchanged list = %v", again)
	}
}
