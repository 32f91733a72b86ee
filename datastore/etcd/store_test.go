package etcd_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
)

func pool(name, cidr string) *v3.IPPool {
	return &v3.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v3.IPPoolSpec{CIDR: cidr, BlockSize: 26}}
}

func wep(ns, name, node string) *v3.WorkloadEndpoint {
	return &v3.WorkloadEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v3.WorkloadEndpointSpec{Node: node}}
}

// raw reads a key straight from etcd.
func raw(t *testing.T, s *etcd.Store, key string) (value map[string]any, modRev int64) {
	t.Helper()
	resp, err := s.Client().Get(context.Background(), key)
	if err != nil {
		t.Fatalf("raw get %s: %v", key, err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("raw get %s: %d keys", key, len(resp.Kvs))
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &value); err != nil {
		t.Fatalf("stored value of %s is not JSON: %v", key, err)
	}
	return value, resp.Kvs[0].ModRevision
}

func TestCRUDClusterScoped(t *testing.T) {
	t.Parallel()
	s := etcdtest.NewStore(t)
	ctx := context.Background()

	in := pool("p1", "10.0.0.0/16")
	before := time.Now().UTC().Truncate(time.Second)
	created, err := s.Create(ctx, in)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if in.ResourceVersion != "" || in.UID != "" {
		t.Errorf("create modified its argument: %+v", in.ObjectMeta)
	}
	p := created.(*v3.IPPool)
	if p.UID == "" || p.ResourceVersion == "" {
		t.Fatalf("create did not set uid/resourceVersion: %+v", p.ObjectMeta)
	}
	ts := p.CreationTimestamp.Time
	if ts.Before(before) || ts.After(time.Now().Add(time.Second)) || ts.Nanosecond() != 0 {
		t.Errorf("creationTimestamp %v: want now, in whole seconds", ts)
	}
	if p.Kind != "IPPool" || p.APIVersion != v3.APIVersion {
		t.Errorf("TypeMeta = %+v", p.TypeMeta)
	}

	// Calico's layout; the value has no resourceVersion, the key's mod
	// revision is the version.
	val, modRev := raw(t, s, "/calico/resources/v3/projectcalico.org/ippools/p1")
	if strconv.FormatInt(modRev, 10) != p.ResourceVersion {
		t.Errorf("resourceVersion %s, key mod revision %d", p.ResourceVersion, modRev)
	}
	meta := val["metadata"].(map[string]any)
	if _, has := meta["resourceVersion"]; has {
		t.Errorf("stored value carries resourceVersion: %v", meta)
	}
	if want := ts.UTC().Format("2006-01-02T15:04:05Z"); meta["creationTimestamp"] != want {
		t.Errorf("stored creationTimestamp %v, want %s (UTC)", meta["creationTimestamp"], want)
	}
	if val["kind"] != "IPPool" || val["apiVersion"] != v3.APIVersion || meta["uid"] != string(p.UID) {
		t.Errorf("stored value = %v", val)
	}

	got, err := s.Get(ctx, v3.Key{Kind: "IPPool", Name: "p1"})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	g := got.(*v3.IPPool)
	if g.Spec.CIDR != "10.0.0.0/16" || g.ResourceVersion != p.ResourceVersion || g.UID != p.UID || !g.CreationTimestamp.Equal(&p.CreationTimestamp) {
		t.Errorf("get = %+v, want %+v", g, p)
	}

	// Update keeps uid and creationTimestamp even when the caller drops them.
	g.Spec.NATOutgoing = true
	g.UID = ""
	g.CreationTimestamp = metav1.Time{}
	updated, err := s.Update(ctx, g)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	u := updated.(*v3.IPPool)
	if !u.Spec.NATOutgoing || u.UID != p.UID || !u.CreationTimestamp.Equal(&p.CreationTimestamp) {
		t.Errorf("update = %+v", u)
	}
	if u.ResourceVersion == p.ResourceVersion {
		t.Errorf("update did not change resourceVersion %s", u.ResourceVersion)
	}
	if again, _ := s.Get(ctx, v3.KeyOf(u)); again.GetUID() != p.UID || again.GetResourceVersion() != u.ResourceVersion {
		t.Errorf("stored after update = %+v", again)
	}

	if _, err := s.Create(ctx, pool("p0", "10.1.0.0/16")); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx, "IPPool", "")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if names := names(list.Items); names != "p0,p1" {
		t.Errorf("list = %s", names)
	}
	if rev, _ := strconv.ParseInt(list.Revision, 10, 64); rev < modRev {
		t.Errorf("list revision %s older than a write at %d", list.Revision, modRev)
	}

	deleted, err := s.Delete(ctx, v3.Key{Kind: "IPPool", Name: "p1"}, "")
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if d := deleted.(*v3.IPPool); !d.Spec.NATOutgoing || d.ResourceVersion != u.ResourceVersion || d.UID != p.UID {
		t.Errorf("delete returned %+v, want the last stored state %+v", d, u)
	}
	if _, err := s.Get(ctx, v3.Key{Kind: "IPPool", Name: "p1"}); !datastore.IsNotFound(err) {
		t.Errorf("get after delete: %v, want ErrNotFound", err)
	}
}

func names(items []v3.Resource) string {
	var out []string
	for _, r := range items {
		if r.GetNamespace() != "" {
			out = append(out, r.GetNamespace()+"/"+r.GetName())
		} else {
			out = append(out, r.GetName())
		}
	}
	return strings.Join(out, ",")
}

func TestCRUDNamespaced(t *testing.T) {
	t.Parallel()
	s := etcdtest.NewStore(t)
	ctx := context.Background()

	// "a-b" sorts before "a" byte-wise in etcd keys ("-" < "/"); List must
	// still order by namespace, then name.
	for _, w := range []*v3.WorkloadEndpoint{wep("a-b", "w1", "n1"), wep("a", "w2", "n1"), wep("a", "w1", "n2"), wep("b", "w0", "n1")} {
		if _, err := s.Create(ctx, w); err != nil {
			t.Fatalf("create %s/%s: %v", w.Namespace, w.Name, err)
		}
	}
	raw(t, s, "/calico/resources/v3/projectcalico.org/workloadendpoints/a-b/w1")

	all, err := s.List(ctx, "WorkloadEndpoint", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(all.Items); got != "a/w1,a/w2,a-b/w1,b/w0" {
		t.Errorf("list all = %s", got)
	}
	inA, err := s.List(ctx, "WorkloadEndpoint", "a")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(inA.Items); got != "a/w1,a/w2" {
		t.Errorf("list a = %s", got)
	}
	empty, err := s.List(ctx, "WorkloadEndpoint", "zzz")
	if err != nil || len(empty.Items) != 0 {
		t.Errorf("list of an empty namespace = %v, %v", names(empty.Items), err)
	}

	key := v3.Key{Kind: "WorkloadEndpoint", Namespace: "a", Name: "w1"}
	got, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	w := got.(*v3.WorkloadEndpoint)
	if w.Spec.Node != "n2" || w.Namespace != "a" {
		t.Errorf("get = %+v", w)
	}
	w.Spec.Node = "n3"
	up, err := s.Update(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	del, err := s.Delete(ctx, key, up.GetResourceVersion())
	if err != nil {
		t.Fatalf("delete with the current version: %v", err)
	}
	if del.(*v3.WorkloadEndpoint).Spec.Node != "n3" {
		t.Errorf("deleted = %+v", del)
	}
	if _, err := s.Get(ctx, key); !datastore.IsNotFound(err) {
		t.Errorf("get after delete: %v", err)
	}
}

func TestCreateKeepsGivenUIDAndTimestamp(t *testing.T) {
	t.Parallel()
	s := etcdtest.NewStore(t)
	in := pool("p", "10.0.0.0/24")
	in.UID = "0b7d1d9b-1111-2222-3333-444455556666"
	in.CreationTimestamp = metav1.NewTime(time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC))
	out, err := s.Create(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if out.GetUID() != in.UID || !out.GetCreationTimestamp().Time.Equal(in.CreationTimestamp.Time) {
		t.Errorf("create replaced given metadata: %+v", out)
	}
	other, err := s.Create(context.Background(), pool("q", "10.0.1.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	if other.GetUID() == in.UID || other.GetUID() == "" {
		t.Errorf("uid of a second resource = %q", other.GetUID())
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	s := etcdtest.NewStore(t)
	ctx := context.Background()
	created, err := s.Create(ctx, pool("p", "10.0.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	stale := created.(*v3.IPPool)
	current, err := s.Update(ctx, v3.Clone(stale))
	if err != nil {
		t.Fatal(err)
	}
	noRV := v3.Clone(stale)
	noRV.ResourceVersion = ""
	badRV := v3.Clone(stale)
	badRV.ResourceVersion = "abc"
	pkey := v3.Key{Kind: "IPPool", Name: "p"}

	cases := []struct {
		name     string
		op       string
		call     func() (v3.Resource, error)
		sentinel error  // nil: an error that wraps no sentinel
		contains string // in the message
	}{
		{"create existing", "create", func() (v3.Resource, error) { return s.Create(ctx, pool("p", "10.9.0.0/24")) }, datastore.ErrAlreadyExists, `IPPool(p)`},
		{"get missing", "get", func() (v3.Resource, error) { return s.Get(ctx, v3.Key{Kind: "IPPool", Name: "nope"}) }, datastore.ErrNotFound, "nope"},
		{"update missing", "update", func() (v3.Resource, error) {
			r := pool("nope", "10.0.0.0/24")
			r.ResourceVersion = current.GetResourceVersion()
			return s.Update(ctx, r)
		}, datastore.ErrNotFound, "nope"},
		{"update stale", "update", func() (v3.Resource, error) { return s.Update(ctx, stale) }, datastore.ErrConflict, stale.ResourceVersion},
		{"update empty rv", "update", func() (v3.Resource, error) { return s.Update(ctx, noRV) }, nil, "read the resource first"},
		{"update bad rv", "update", func() (v3.Resource, error) { return s.Update(ctx, badRV) }, nil, `"abc"`},
		{"delete missing", "delete", func() (v3.Resource, error) { return s.Delete(ctx, v3.Key{Kind: "IPPool", Name: "nope"}, "") }, datastore.ErrNotFound, "nope"},
		{"delete missing with rv", "delete", func() (v3.Resource, error) {
			return s.Delete(ctx, v3.Key{Kind: "IPPool", Name: "nope"}, current.GetResourceVersion())
		}, datastore.ErrNotFound, "nope"},
		{"delete stale", "delete", func() (v3.Resource, error) { return s.Delete(ctx, pkey, stale.ResourceVersion) }, datastore.ErrConflict, "IPPool(p)"},
		{"namespaced without namespace", "create", func() (v3.Resource, error) { return s.Create(ctx, wep("", "w", "n")) }, nil, "namespace is required"},
		{"cluster-scoped with namespace", "create", func() (v3.Resource, error) {
			r := pool("x", "10.0.0.0/24")
			r.Namespace = "ns"
			return s.Create(ctx, r)
		}, nil, "cluster-scoped"},
		{"empty name", "create", func() (v3.Resource, error) { return s.Create(ctx, pool("", "10.0.0.0/24")) }, nil, "metadata.name is empty"},
		{"slash in name", "create", func() (v3.Resource, error) { return s.Create(ctx, pool("a/b", "10.0.0.0/24")) }, nil, "contains '/'"},
		{"unknown kind", "get", func() (v3.Resource, error) { return s.Get(ctx, v3.Key{Kind: "Bogus", Name: "x"}) }, nil, `unknown resource kind "Bogus"`},
		{"get namespaced without namespace", "get", func() (v3.Resource, error) {
			return s.Get(ctx, v3.Key{Kind: "WorkloadEndpoint", Name: "x"})
		}, nil, "namespace is required"},
		{"nil resource", "create", func() (v3.Resource, error) { return s.Create(ctx, nil) }, nil, "nil"},
	}
	sentinels := []error{datastore.ErrNotFound, datastore.ErrAlreadyExists, datastore.ErrConflict, datastore.ErrCompacted, datastore.ErrUnavailable}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := c.call()
			if err == nil {
				t.Fatalf("no error; got %+v", r)
			}
			if r != nil {
				t.Errorf("a resource came with the error: %+v", r)
			}
			var de *datastore.Error
			if !errors.As(err, &de) || de.Op != c.op {
				t.Errorf("error %v (%T) is not a *datastore.Error for op %q", err, err, c.op)
			}
			for _, s := range sentinels {
				if want := s == c.sentinel; errors.Is(err, s) != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, !want, want)
				}
			}
			if !strings.Contains(err.Error(), c.contains) {
				t.Errorf("error %q does not mention %q", err, c.contains)
			}
		})
	}
	// The failed stale delete left the resource in place.
	if got, err := s.Get(ctx, pkey); err != nil || got.GetResourceVersion() != current.GetResourceVersion() {
		t.Errorf("after refused writes: %v, %v", got, err)
	}
}

func TestListAndWatchRefuseBadScopes(t *testing.T) {
	t.Parallel()
	s := etcdtest.NewStore(t)
	ctx := context.Background()
	if _, err := s.List(ctx, "IPPool", "ns"); err == nil || !strings.Contains(err.Error(), "cluster-scoped") {
		t.Errorf("list of a cluster kind in a namespace: %v", err)
	}
	if _, err := s.List(ctx, "Bogus", ""); err == nil {
		t.Error("list of an unknown kind succeeded")
	}
	if _, err := s.Watch(ctx, "IPPool", "ns", ""); err == nil {
		t.Error("watch of a cluster kind in a namespace succeeded")
	}
	if _, err := s.Watch(ctx, "IPPool", "", "x1"); err == nil {
		t.Error("watch from a non-numeric revision succeeded")
	}
}

// Twenty writers read the same version and race to update it: etcd's compare
// lets exactly one through.
func TestConcurrentUpdatesExactlyOneWins(t *testing.T) {
	t.Parallel()
	s := etcdtest.NewStore(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, pool("p", "10.0.0.0/24")); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var (
		wg, read  sync.WaitGroup
		start     = make(chan struct{})
		mu        sync.Mutex
		winners   []string
		conflicts int
		others    []error
	)
	for i := range n {
		wg.Add(1)
		read.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.Get(ctx, v3.Key{Kind: "IPPool", Name: "p"})
			read.Done()
			if err != nil {
				mu.Lock()
				others = append(others, err)
				mu.Unlock()
				return
			}
			p := got.(*v3.IPPool)
			p.Spec.NodeSelector = "writer == '" + strconv.Itoa(i) + "'"
			<-start
			_, err = s.Update(ctx, p)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, p.Spec.NodeSelector)
			case datastore.IsConflict(err):
				conflicts++
			default:
				others = append(others, err)
			}
		}()
	}
	read.Wait() // every writer holds the same version before any writes
	close(start)
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("unexpected errors: %v", others)
	}
	if len(winners) != 1 || conflicts != n-1 {
		t.Fatalf("%d updates succeeded and %d conflicted; want 1 and %d", len(winners), conflicts, n-1)
	}
	got, err := s.Get(ctx, v3.Key{Kind: "IPPool", Name: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if sel := got.(*v3.IPPool).Spec.NodeSelector; sel != winners[0] {
		t.Errorf("stored %q, winner wrote %q", sel, winners[0])
	}
}

// Read-modify-write with retry on conflict never loses an increment.
func TestCounterNeverLosesAnIncrement(t *testing.T) {
	t.Parallel()
	s := etcdtest.NewStore(t)
	ctx := context.Background()
	key := v3.Key{Kind: "IPPool", Name: "counter"}
	if _, err := s.Create(ctx, pool("counter", "10.0.0.0/24")); err != nil {
		t.Fatal(err)
	}
	const workers, each = 10, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				for {
					got, err := s.Get(ctx, key)
					if err != nil {
						errs <- err
						return
					}
					p := got.(*v3.IPPool)
					p.Spec.BlockSize++
					if _, err = s.Update(ctx, p); err == nil {
						break
					}
					if !datastore.IsConflict(err) {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if n := got.(*v3.IPPool).Spec.BlockSize - 26; n != workers*each {
		t.Errorf("counter = %d, want %d", n, workers*each)
	}
}

// closedPort returns a loopback address nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestUnreachableIsUnavailable(t *testing.T) {
	t.Parallel()
	ep := "http://" + closedPort(t)
	s, err := etcd.New(datastore.EtcdConfig{Endpoints: []string{ep}, DialTimeout: 300 * time.Millisecond, RequestTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatalf("new must not wait for the cluster: %v", err)
	}
	t.Cleanup(func() { s.Close() }) // after the parallel subtests
	ctx := context.Background()
	calls := map[string]func() error{
		"get":    func() error { _, err := s.Get(ctx, v3.Key{Kind: "IPPool", Name: "p"}); return err },
		"list":   func() error { _, err := s.List(ctx, "IPPool", ""); return err },
		"create": func() error { _, err := s.Create(ctx, pool("p", "10.0.0.0/24")); return err },
		"update": func() error {
			p := pool("p", "10.0.0.0/24")
			p.ResourceVersion = "5"
			_, err := s.Update(ctx, p)
			return err
		},
		"delete": func() error { _, err := s.Delete(ctx, v3.Key{Kind: "IPPool", Name: "p"}, ""); return err },
		"watch":  func() error { _, err := s.Watch(ctx, "IPPool", "", ""); return err },
	}
	for op, call := range calls {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			err := call()
			if !errors.Is(err, datastore.ErrUnavailable) {
				t.Fatalf("%s: %v, want ErrUnavailable", op, err)
			}
			if !strings.Contains(err.Error(), ep) {
				t.Errorf("%s: error %q does not name the endpoint %s", op, err, ep)
			}
		})
	}
}

// When the caller gives up, the error says so instead of blaming the cluster.
func TestCallerCancellationIsNotUnavailable(t *testing.T) {
	t.Parallel()
	s, err := etcd.New(datastore.EtcdConfig{Endpoints: []string{"http://" + closedPort(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.Get(ctx, v3.Key{Kind: "IPPool", Name: "p"})
	if !errors.Is(err, context.Canceled) || errors.Is(err, datastore.ErrUnavailable) {
		t.Errorf("get with a cancelled context: %v", err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]datastore.EtcdConfig{
		"no endpoints":     {},
		"bad scheme":       {Endpoints: []string{"ftp://127.0.0.1:2379"}},
		"cert without key": {Endpoints: []string{"https://127.0.0.1:2379"}, CertFile: "/x/cert.pem"},
		"missing CA file":  {Endpoints: []string{"https://127.0.0.1:2379"}, CACertFile: "/nonexistent/ca.pem"},
	} {
		if s, err := etcd.New(cfg); err == nil {
			s.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	t.Parallel()
	s, err := etcd.New(datastore.EtcdConfig{Endpoints: etcdtest.Start(t).Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, err := s.Get(context.Background(), v3.Key{Kind: "IPPool", Name: "p"}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("get on a closed store: %v", err)
	}
	if _, err := s.Watch(context.Background(), "IPPool", "", ""); err == nil {
		t.Error("watch on a closed store succeeded")
	}
}
