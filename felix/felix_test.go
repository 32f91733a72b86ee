package felix_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
	"github.com/tabbynet/tabby/felix"
	"github.com/tabbynet/tabby/felix/dataplane"
	"github.com/tabbynet/tabby/felix/dataplane/dataplanetest"
)

// fakeNode is a Felix on a fake kernel (no root needed) and a real etcd.
type fakeNode struct {
	f    *felix.Felix
	k    *dataplanetest.Kernel
	ds   datastore.Interface
	log  *logRecorder
	reg  *prometheus.Registry
	node string
}

func newFakeNode(t *testing.T, ds datastore.Interface, cfg felix.Config, links ...string) *fakeNode {
	t.Helper()
	log, rec := newLog(t)
	k := dataplanetest.New()
	k.AddLink("eth0")
	for _, l := range links {
		k.AddLink(l)
	}
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	cfg.Dataplane = dataplane.NewReconciler(k, k, log)
	if cfg.RetryMaxBackoff == 0 {
		cfg.RetryMaxBackoff = 200 * time.Millisecond
	}
	f := felix.New(cfg, ds, "n1", log)
	return &fakeNode{f: f, k: k, ds: ds, log: rec, reg: reg, node: "n1"}
}

func (n *fakeNode) waitRoutes(t *testing.T, what string, want ...string) {
	t.Helper()
	wantText := strings.Join(slices.Sorted(slices.Values(want)), "\n")
	eventually(t, what, func() (bool, string) {
		got := n.k.Routes()
		lines := slices.DeleteFunc(strings.Split(got, "\n"), func(s string) bool { return s == "" })
		return strings.Join(slices.Sorted(slices.Values(lines)), "\n") == wantText, got
	})
}

func TestNothingIsWrittenBeforeInSync(t *testing.T) {
	n := newFakeNode(t, unreachableStore(t), felix.Config{}, "cali1")
	if err := n.k.AddRoute("10.65.0.77 dev cali1 proto 98 scope link"); err != nil { // stale, would be pruned
		t.Fatal(err)
	}
	runFelix(t, n.f)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := n.f.UpsertWorkload(ctx, wep("ns1", "a", "n1", "c1", "cali1", "10.65.0.5/32"))
	if !errors.Is(err, felix.ErrNotInSync) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("upsert with the datastore unreachable: %v, want ErrNotInSync and the deadline", err)
	}
	// The loop saw the intent and chose not to act.
	n.log.waitMessage(t, "datastore not in sync yet")
	if n.f.InSync() {
		t.Error("InSync with an unreachable datastore")
	}
	if ops, writes := n.k.Ops(), n.k.Writes(); len(ops)+len(writes) > 0 {
		t.Errorf("kernel written before in-sync: ops %q sysctls %q", ops, writes)
	}
	if got := n.k.Routes(); got != "10.65.0.77 dev cali1 proto 98 scope link" {
		t.Errorf("kernel routes changed: %s", got)
	}
}

func TestRoutesFollowTheDatastore(t *testing.T) {
	ds := etcdtest.NewStore(t)
	create(t, ds, wep("ns1", "a", "n1", "c1", "cali1", "10.65.0.5/32"))
	create(t, ds, wep("ns1", "other", "n2", "c9", "cali9", "10.65.1.5/32"))
	create(t, ds, affinity("n1", "10.65.0.0/26"))
	create(t, ds, affinity("n2", "10.65.1.0/26"))
	n := newFakeNode(t, ds, felix.Config{}, "cali1", "cali2")
	runFelix(t, n.f)
	waitInSync(t, n.f)
	n.waitRoutes(t, "routes after the first sync",
		"10.65.0.5 dev cali1 proto 98 scope link",
		"blackhole 10.65.0.0/26 proto 98",
	)
	if got := n.k.Sysctl("net/ipv4/conf/cali1/proxy_arp"); got != "1" {
		t.Errorf("cali1 proxy_arp = %q", got)
	}
	if got := n.k.Sysctl("net/ipv4/ip_forward"); got != "1" {
		t.Errorf("ip_forward = %q", got)
	}

	b := create(t, ds, wep("ns1", "b", "n1", "c2", "cali2", "10.65.0.6/32"))
	n.waitRoutes(t, "routes after a new endpoint",
		"10.65.0.5 dev cali1 proto 98 scope link",
		"10.65.0.6 dev cali2 proto 98 scope link",
		"blackhole 10.65.0.0/26 proto 98",
	)
	del(t, ds, b)
	del(t, ds, affinity("n1", "10.65.0.0/26"))
	n.waitRoutes(t, "routes after deletes", "10.65.0.5 dev cali1 proto 98 scope link")

	if got := metricValue(t, n.reg, "tabby_felix_routes_programmed"); got != 1 {
		t.Errorf("routes programmed gauge = %v, want 1", got)
	}
	if got := metricValue(t, n.reg, "tabby_felix_reconcile_duration_seconds"); got < 3 {
		t.Errorf("reconcile duration histogram has %v observations, want one per apply (at least 3)", got)
	}
}

// metricValue reads a gauge's or counter's value, or a histogram's count,
// from the registry Felix registered on.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestUpsertAndRemoveWorkloadWaitForTheKernel(t *testing.T) {
	ds := etcdtest.NewStore(t)
	n := newFakeNode(t, ds, felix.Config{}, "cali1")
	runFelix(t, n.f)
	waitInSync(t, n.f)
	ctx := context.Background()

	a := wep("ns1", "a", "n1", "c1", "cali1", "10.65.0.5/32")
	if err := n.f.UpsertWorkload(ctx, a); err != nil {
		t.Fatalf("upsert: %v", err)
	}
	// No waiting here: when UpsertWorkload returns, the route is there.
	if got := n.k.Routes(); got != "10.65.0.5 dev cali1 proto 98 scope link" {
		t.Fatalf("kernel right after upsert: %q", got)
	}
	if got := n.k.Sysctl("net/ipv4/conf/cali1/proxy_arp"); got != "1" {
		t.Errorf("proxy_arp right after upsert = %q", got)
	}
	if p := n.f.CheckWorkload(a); len(p) > 0 {
		t.Errorf("check after upsert: %q", p)
	}
	if err := n.f.RemoveWorkload(ctx, v3.KeyOf(a)); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if got := n.k.Routes(); got != "" {
		t.Fatalf("kernel right after remove: %q", got)
	}
	if p := n.f.CheckWorkload(a); len(p) != 1 || !strings.Contains(p[0], "missing") {
		t.Errorf("check after remove: %q", p)
	}
	// Removing what is not there is fine.
	if err := n.f.RemoveWorkload(ctx, v3.Key{Kind: "WorkloadEndpoint", Namespace: "ns1", Name: "nope"}); err != nil {
		t.Errorf("remove unknown: %v", err)
	}
	if err := n.f.UpsertWorkload(ctx, wep("ns1", "x", "n2", "c1", "cali1", "10.65.0.5/32")); err == nil {
		t.Error("upsert of another node's endpoint accepted")
	}
	if err := n.f.UpsertWorkload(ctx, wep("ns1", "x", "n1", "c1", "cali1", "bogus")); err == nil {
		t.Error("upsert of an endpoint with a bad address accepted")
	}
}

func TestUpsertReportsTheFailureOfItsRoute(t *testing.T) {
	ds := etcdtest.NewStore(t)
	n := newFakeNode(t, ds, felix.Config{RetryInitialBackoff: 10 * time.Millisecond}, "cali1")
	runFelix(t, n.f)
	waitInSync(t, n.f)
	ctx := context.Background()
	if err := n.f.UpsertWorkload(ctx, wep("ns1", "a", "n1", "c1", "cali1", "10.65.0.5/32")); err != nil {
		t.Fatal(err)
	}

	// The veth of b does not exist yet: b's upsert fails with that, a is fine.
	b := wep("ns1", "b", "n1", "c2", "cali2", "10.65.0.6/32")
	err := n.f.UpsertWorkload(ctx, b)
	if !errors.Is(err, dataplane.ErrNoInterface) || !strings.Contains(err.Error(), "10.65.0.6/32") {
		t.Fatalf("upsert without a veth: %v", err)
	}
	if p := n.f.CheckWorkload(b); len(p) == 0 || !strings.Contains(p[0], "interface does not exist") {
		t.Errorf("check without the veth: %q", p)
	}
	// The intent stays: once the veth exists the retry programs it.
	n.k.AddLink("cali2")
	n.waitRoutes(t, "route after the veth appears",
		"10.65.0.5 dev cali1 proto 98 scope link",
		"10.65.0.6 dev cali2 proto 98 scope link")
	if got := metricValue(t, n.reg, "tabby_felix_apply_errors_total"); got < 1 {
		t.Errorf("apply errors counter = %v", got)
	}

	// Another endpoint claiming a's address does not get it.
	err = n.f.UpsertWorkload(ctx, wep("ns1", "z", "n1", "c3", "cali2", "10.65.0.5/32"))
	if err == nil || !strings.Contains(err.Error(), `also used by WorkloadEndpoint "ns1/a"`) {
		t.Errorf("upsert of a duplicate address: %v", err)
	}
}

func TestPeriodicResyncRepairsDrift(t *testing.T) {
	ds := etcdtest.NewStore(t)
	create(t, ds, wep("ns1", "a", "n1", "c1", "cali1", "10.65.0.5/32"))
	n := newFakeNode(t, ds, felix.Config{RouteRefreshInterval: 50 * time.Millisecond}, "cali1")
	if err := n.k.AddRoute("10.65.9.9 dev cali1 proto static scope link"); err != nil {
		t.Fatal(err)
	}
	runFelix(t, n.f)
	n.waitRoutes(t, "first sync", "10.65.0.5 dev cali1 proto 98 scope link", "10.65.9.9 dev cali1 proto static scope link")

	// Behind the loop's back: our route deleted, and a stale one of ours
	// added. No datastore event follows; only the resync can notice.
	n.k.DelRoutes("10.65.0.5/32")
	if err := n.k.AddRoute("10.65.0.66 dev cali1 proto 98 scope link"); err != nil {
		t.Fatal(err)
	}
	n.waitRoutes(t, "drift repaired", "10.65.0.5 dev cali1 proto 98 scope link", "10.65.9.9 dev cali1 proto static scope link")
}

// The CNI path and the datastore disagree for a while; the rules for who
// wins are what keeps a re-created pod's route in place.
func TestCNIPathAndDatastoreAgree(t *testing.T) {
	ds := etcdtest.NewStore(t)
	old := create(t, ds, wep("ns1", "web-0", "n1", "c-old", "cali1", "10.65.0.5/32"))
	n := newFakeNode(t, ds, felix.Config{}, "cali1", "cali2")
	runFelix(t, n.f)
	n.waitRoutes(t, "first sync", "10.65.0.5 dev cali1 proto 98 scope link")
	ctx := context.Background()

	// The pod is re-created under the same name before the datastore has
	// caught up: the CNI path's endpoint wins.
	fresh := wep("ns1", "web-0", "n1", "c-new", "cali2", "10.65.0.6/32")
	if err := n.f.UpsertWorkload(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if got := n.k.Routes(); got != "10.65.0.6 dev cali2 proto 98 scope link" {
		t.Fatalf("after upsert: %q", got)
	}
	// The late delete of the old incarnation does not take the new one away.
	// A marker endpoint created after it shows when Felix has seen the
	// delete: the syncer delivers one kind's events in datastore order.
	del(t, ds, old)
	create(t, ds, wep("ns1", "marker", "n1", "c-m", "cali1", "10.65.0.9/32"))
	n.waitRoutes(t, "the new incarnation survives the old one's delete",
		"10.65.0.6 dev cali2 proto 98 scope link",
		"10.65.0.9 dev cali1 proto 98 scope link")

	// The datastore catches up; then deleting it there removes the route
	// (the datastore is the truth once it has confirmed).
	stored := create(t, ds, fresh)
	del(t, ds, stored)
	n.waitRoutes(t, "route removed by the datastore", "10.65.0.9 dev cali1 proto 98 scope link")
}

func TestUnconfirmedLocalIntentExpires(t *testing.T) {
	ds := etcdtest.NewStore(t)
	n := newFakeNode(t, ds, felix.Config{LocalIntentTTL: 200 * time.Millisecond}, "cali1")
	runFelix(t, n.f)
	waitInSync(t, n.f)
	// The agent never managed to store this endpoint.
	if err := n.f.UpsertWorkload(context.Background(), wep("ns1", "a", "n1", "c1", "cali1", "10.65.0.5/32")); err != nil {
		t.Fatal(err)
	}
	n.waitRoutes(t, "the datastore wins after the TTL")
	n.log.waitMessage(t, "never confirmed")
}

func TestMetricsAreRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	k := dataplanetest.New()
	_ = felix.New(felix.Config{Registerer: reg, Dataplane: dataplane.NewReconciler(k, k, discard())}, nil, "n1", discard())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	// Histograms with no observations are still gathered; all three exist.
	want := []string{"tabby_felix_apply_errors_total", "tabby_felix_reconcile_duration_seconds", "tabby_felix_routes_programmed"}
	if !slices.Equal(names, want) {
		t.Errorf("registered metrics %q, want %q", names, want)
	}
}
