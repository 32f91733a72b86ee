package agent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tabbynet/tabby/api/agentpb"
	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
	"github.com/tabbynet/tabby/ipam"
)

// serve starts an agent for node "node-1" on ds and dp and returns it with
// a client; both are stopped when the test ends.
func serve(t *testing.T, ds datastore.Interface, dp Dataplane) (*Server, agentpb.AgentClient) {
	t.Helper()
	srv, err := New(Options{
		NodeName: "node-1", Datastore: ds, IPAM: ipam.New(ds, etcdtest.Logger(t)), Dataplane: dp, Log: etcdtest.Logger(t),
		Metrics: prometheus.NewRegistry(), Version: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Stop(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return srv, agentpb.NewAgentClient(conn)
}

// gatedDataplane is a recordingDataplane whose UpsertWorkload of the
// endpoints in hold waits until the test closes their channel, and which
// logs the order of what happened.
type gatedDataplane struct {
	recordingDataplane
	hold map[string]chan struct{} // by endpoint name

	logMu sync.Mutex
	log   []string
}

func (d *gatedDataplane) note(e string) {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	d.log = append(d.log, e)
}

func (d *gatedDataplane) events() []string {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	return slices.Clone(d.log)
}

func (d *gatedDataplane) UpsertWorkload(ctx context.Context, wep *v3.WorkloadEndpoint) error {
	d.note("upsert " + wep.Name)
	if ch, ok := d.hold[wep.Name]; ok {
		<-ch
	}
	err := d.recordingDataplane.UpsertWorkload(ctx, wep)
	d.note("upserted " + wep.Name)
	return err
}

func (d *gatedDataplane) RemoveWorkload(ctx context.Context, key v3.Key) error {
	d.note("remove " + key.Name)
	return d.recordingDataplane.RemoveWorkload(ctx, key)
}

// Calls for different pods do not wait for each other; calls for the same
// pod do, in order.
func TestCallsForOnePodAreSerializedOthersAreNot(t *testing.T) {
	ds := etcdtest.NewStore(t)
	newPool(t, ds, "pool1", "10.65.0.0/24", 26)
	release := make(chan struct{})
	dp := &gatedDataplane{recordingDataplane: recordingDataplane{routes: map[v3.Key][]string{}},
		hold: map[string]chan struct{}{"node--1-k8s-a-eth0": release}}
	srv, client := serve(t, ds, dp)
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open) // before the server stops: a failed test must not hang it
	c := ctx(t)

	add := func(name, cid, iface string) error {
		as, err := client.AssignIPs(c, &agentpb.AssignIPsRequest{Workload: pod("ns", name, cid), AssignIpv4: true})
		if err != nil {
			return err
		}
		_, err = client.AddWorkload(c, &agentpb.AddWorkloadRequest{Workload: pod("ns", name, cid), InterfaceName: iface, Ips: as.Ips})
		return err
	}
	addA := make(chan error, 1)
	go func() { addA <- add("a", "ca", "cali0000000000a") }()
	waitFor(t, func() bool { return slices.Contains(dp.events(), "upsert node--1-k8s-a-eth0") }, "pod a's route to be requested")

	// Pod b's whole ADD goes through while pod a's waits for its route.
	if err := add("b", "cb", "cali0000000000b"); err != nil {
		t.Fatalf("ADD of pod b while pod a's is in progress: %v", err)
	}

	// Pod a's DEL waits for pod a's ADD: it may not record a removal that
	// the ADD's route would then overwrite, or the other way round.
	delA := make(chan error, 1)
	go func() {
		_, err := client.DelWorkload(c, &agentpb.DelWorkloadRequest{Workload: pod("ns", "a", "ca")})
		delA <- err
	}()
	waitFor(t, func() bool { return srv.keys.users(endpointLockKey("ns", "node--1-k8s-a-eth0")) == 2 }, "pod a's DEL to wait for its lock")
	open()
	if err := <-addA; err != nil {
		t.Fatalf("ADD of pod a: %v", err)
	}
	if err := <-delA; err != nil {
		t.Fatalf("DEL of pod a: %v", err)
	}
	ev := dp.events()
	if i, j := slices.Index(ev, "upserted node--1-k8s-a-eth0"), slices.Index(ev, "remove node--1-k8s-a-eth0"); i < 0 || j < i {
		t.Fatalf("pod a's route removal did not wait for its ADD: %v", ev)
	}
	if _, ok := dp.routes[v3.Key{Kind: "WorkloadEndpoint", Namespace: "ns", Name: "node--1-k8s-a-eth0"}]; ok || dp.count() != 1 {
		t.Fatalf("routes after DEL of a: %v", dp.routes)
	}
}

// users is how many calls hold or wait for key's lock.
func (k *keyLocks) users(key string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if l, ok := k.locks[key]; ok {
		return l.users
	}
	return 0
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Many pods at once each get their own address, endpoint and route, and
// all of it goes away again.
func TestManyPodsAtOnce(t *testing.T) {
	ds := etcdtest.NewStore(t)
	newPool(t, ds, "pool1", "10.65.0.0/24", 26)
	h := start(t, ds)
	c := ctx(t)
	const n = 30
	ips := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := pod("ns", fmt.Sprintf("p%d", i), fmt.Sprintf("c%d", i))
			as, err := h.client.AssignIPs(c, &agentpb.AssignIPsRequest{Workload: id, AssignIpv4: true})
			if err != nil {
				errs[i] = err
				return
			}
			ips[i] = as.Ips[0]
			_, errs[i] = h.client.AddWorkload(c, &agentpb.AddWorkloadRequest{Workload: id, InterfaceName: fmt.Sprintf("cali%011d", i), Ips: as.Ips})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(ips)))) != n {
		t.Fatalf("addresses handed out more than once: %v", ips)
	}
	if h.dp.count() != n {
		t.Fatalf("%d routes for %d pods", h.dp.count(), n)
	}
	if l, err := ds.List(c, "WorkloadEndpoint", ""); err != nil || len(l.Items) != n {
		t.Fatalf("%d endpoints stored (%v), want %d", len(l.Items), err, n)
	}
	for i := range n {
		wg.Go(func() {
			id := pod("ns", fmt.Sprintf("p%d", i), fmt.Sprintf("c%d", i))
			if _, err := h.client.DelWorkload(c, &agentpb.DelWorkloadRequest{Workload: id}); err != nil {
				errs[i] = err
				return
			}
			rel, err := h.client.ReleaseIPs(c, &agentpb.ReleaseIPsRequest{Workload: id})
			if err == nil && !slices.Equal(rel.Released, []string{ips[i]}) {
				err = fmt.Errorf("pod %d released %v, want %s", i, rel.Released, ips[i])
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if h.dp.count() != 0 {
		t.Fatalf("%d routes left", h.dp.count())
	}
	if rep, err := h.ipam.Check(c); err != nil || len(rep.Allocations) != 0 || len(rep.LeakedHandles) != 0 || len(rep.HandleMismatches) != 0 {
		t.Fatalf("IPAM after releasing everything: %+v (%v)", rep, err)
	}
}

// failingStore fails writes of WorkloadEndpoints of one operation as an
// unreachable datastore would.
type failingStore struct {
	datastore.Interface
	failOp string // "create", "update", "delete"
}

func (f *failingStore) fail(op string, r v3.Resource, key v3.Key) error {
	if op == f.failOp && (key.Kind == "WorkloadEndpoint" || r != nil && v3.KindOf(r) == "WorkloadEndpoint") {
		return &datastore.Error{Op: op, Key: key, Err: datastore.ErrUnavailable}
	}
	return nil
}

func (f *failingStore) Create(ctx context.Context, r v3.Resource) (v3.Resource, error) {
	if err := f.fail("create", r, v3.Key{}); err != nil {
		return nil, err
	}
	return f.Interface.Create(ctx, r)
}

func (f *failingStore) Update(ctx context.Context, r v3.Resource) (v3.Resource, error) {
	if err := f.fail("update", r, v3.Key{}); err != nil {
		return nil, err
	}
	return f.Interface.Update(ctx, r)
}

func (f *failingStore) Delete(ctx context.Context, key v3.Key, rv string) (v3.Resource, error) {
	if err := f.fail("delete", nil, key); err != nil {
		return nil, err
	}
	return f.Interface.Delete(ctx, key, rv)
}

// The endpoint write and the route run at once; when the write fails, the
// route the call recorded is taken back and the dataplane follows the
// datastore again: no route for a new pod, the stored endpoint's route for
// a pod whose older sandbox is still stored.
func TestFailedEndpointWriteTakesTheRouteBack(t *testing.T) {
	ds := etcdtest.NewStore(t)
	dp := &recordingDataplane{routes: map[v3.Key][]string{}}
	fs := &failingStore{Interface: ds, failOp: "create"}
	_, client := serve(t, fs, dp)
	c := ctx(t)

	_, err := client.AddWorkload(c, &agentpb.AddWorkloadRequest{Workload: pod("ns", "new", "c1"), InterfaceName: "cali0000000000n", Ips: []string{"10.65.0.1/32"}})
	wantCode(t, err, codes.Unavailable, "write WorkloadEndpoint")
	if dp.count() != 0 {
		t.Fatalf("route left for an endpoint that was not written: %v", dp.routes)
	}

	// An older sandbox's endpoint is stored; replacing it fails.
	old := &v3.WorkloadEndpoint{}
	old.ObjectMeta = metav1.ObjectMeta{Name: "node--1-k8s-web-eth0", Namespace: "ns"}
	old.Spec = v3.WorkloadEndpointSpec{Orchestrator: "k8s", Node: "node-1", Pod: "web", ContainerID: "old", Endpoint: "eth0",
		InterfaceName: "cali0000000000w", IPNetworks: []string{"10.65.0.7/32"}}
	if _, err := ds.Create(c, old); err != nil {
		t.Fatal(err)
	}
	fs.failOp = "update"
	_, err = client.AddWorkload(c, &agentpb.AddWorkloadRequest{Workload: pod("ns", "web", "new"), InterfaceName: "cali0000000000w", Ips: []string{"10.65.0.9/32"}})
	wantCode(t, err, codes.Unavailable, "write WorkloadEndpoint")
	if got := dp.routes[v3.KeyOf(old)]; !slices.Equal(got, []string{"10.65.0.7/32"}) {
		t.Fatalf("after the failed replace the dataplane has %v for the pod, want the stored endpoint's 10.65.0.7/32", got)
	}
}

// When the delete of an endpoint fails, its route comes back.
func TestFailedEndpointDeleteKeepsTheRoute(t *testing.T) {
	ds := etcdtest.NewStore(t)
	dp := &recordingDataplane{routes: map[v3.Key][]string{}}
	fs := &failingStore{Interface: ds}
	_, client := serve(t, fs, dp)
	c := ctx(t)
	id := pod("ns", "web", "c1")
	if _, err := client.AddWorkload(c, &agentpb.AddWorkloadRequest{Workload: id, InterfaceName: "cali0000000000w", Ips: []string{"10.65.0.1/32"}}); err != nil {
		t.Fatal(err)
	}
	fs.failOp = "delete"
	_, err := client.DelWorkload(c, &agentpb.DelWorkloadRequest{Workload: id})
	wantCode(t, err, codes.Unavailable, "delete the endpoint")
	key := v3.Key{Kind: "WorkloadEndpoint", Namespace: "ns", Name: "node--1-k8s-web-eth0"}
	if got := dp.routes[key]; !slices.Equal(got, []string{"10.65.0.1/32"}) {
		t.Fatalf("the endpoint is still stored but the dataplane has %v for it", got)
	}
	fs.failOp = ""
	if del, err := client.DelWorkload(c, &agentpb.DelWorkloadRequest{Workload: id}); err != nil || !del.Found || dp.count() != 0 {
		t.Fatalf("DEL once the datastore works: %v %v, routes %v", del, err, dp.routes)
	}
}
