package agent

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tabbynet/tabby/api/agentpb"
	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
	"github.com/tabbynet/tabby/ipam"
)

// recordingDataplane stands in for Felix in the tests that are about the
// agent's own logic; the netns test uses the real Felix.
type recordingDataplane struct {
	mu      sync.Mutex
	routes  map[v3.Key][]string // endpoint -> ipNetworks "programmed"
	failAdd error
	panic   bool
}

func (d *recordingDataplane) UpsertWorkload(_ context.Context, wep *v3.WorkloadEndpoint) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.panic {
		panic("dataplane bug")
	}
	if d.failAdd != nil {
		return d.failAdd
	}
	d.routes[v3.KeyOf(wep)] = wep.Spec.IPNetworks
	return nil
}

func (d *recordingDataplane) RemoveWorkload(_ context.Context, key v3.Key) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.routes, key)
	return nil
}

func (d *recordingDataplane) CheckWorkload(wep *v3.WorkloadEndpoint) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.routes[v3.KeyOf(wep)]; !ok {
		return []string{"no route for " + wep.Name}
	}
	return nil
}

func (d *recordingDataplane) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.routes)
}

type harness struct {
	ds     datastore.Interface
	ipam   *ipam.IPAM
	dp     *recordingDataplane
	reg    *prometheus.Registry
	client agentpb.AgentClient
	socket string
}

func newPool(t *testing.T, ds datastore.Interface, name, cidr string, blockSize int) {
	t.Helper()
	r, _ := v3.NewResource("IPPool")
	p := r.(*v3.IPPool)
	p.ObjectMeta = metav1.ObjectMeta{Name: name}
	p.Spec = v3.IPPoolSpec{CIDR: cidr, BlockSize: blockSize}
	v3.SetDefaults(p)
	if _, err := ds.Create(context.Background(), p); err != nil {
		t.Fatalf("create pool %s: %v", name, err)
	}
}

// start serves an agent for node "node-1" over a unix socket in a temp dir.
func start(t *testing.T, ds datastore.Interface) *harness {
	t.Helper()
	h := &harness{ds: ds, ipam: ipam.New(ds, etcdtest.Logger(t)), dp: &recordingDataplane{routes: map[v3.Key][]string{}}, reg: prometheus.NewRegistry()}
	srv, err := New(Options{
		NodeName: "node-1", Datastore: ds, IPAM: h.ipam, Dataplane: h.dp, Log: etcdtest.Logger(t),
		Metrics: h.reg, MTU: func() int { return 1480 }, Health: func() (bool, bool) { return true, true }, Version: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	h.socket = filepath.Join(t.TempDir(), "run", "agent.sock")
	l, err := Listen(h.socket)
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
	conn, err := grpc.NewClient("unix://"+h.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h.client = agentpb.NewAgentClient(conn)
	return h
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func pod(ns, name, cid string) *agentpb.WorkloadID {
	return &agentpb.WorkloadID{Orchestrator: "k8s", Namespace: ns, Pod: name, ContainerId: cid, Endpoint: "eth0"}
}

func wantCode(t *testing.T, err error, code codes.Code, msgPart string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), msgPart) {
		t.Fatalf("got %v, want code %s with message containing %q", err, code, msgPart)
	}
}

func TestSocketIsPrivate(t *testing.T) {
	ds := etcdtest.NewStore(t)
	h := start(t, ds)
	fi, err := os.Stat(h.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	di, err := os.Stat(filepath.Dir(h.socket))
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("socket directory mode %v (%v), want 0700", di.Mode(), err)
	}
	st, err := h.client.Status(ctx(t), &agentpb.StatusRequest{})
	if err != nil || st.GetNodeName() != "node-1" || st.GetMtu() != 1480 || !st.GetReady() || !st.GetLive() {
		t.Fatalf("Status = %v, %v", st, err)
	}
	// A second agent on the same path is refused while the first serves.
	if _, err := Listen(h.socket); err == nil || !strings.Contains(err.Error(), "another process is serving it") {
		t.Errorf("second Listen: %v", err)
	}
}

func TestListenReplacesStaleSocketOnly(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "agent.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close() // leaves the socket file, as a killed calico-node would
	l2, err := Listen(stale)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l2.Close()

	file := filepath.Join(dir, "not-a-socket")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "a file is in the way") {
		t.Errorf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Error("Listen touched a regular file")
	}
}

func TestWorkloadLifecycle(t *testing.T) {
	ds := etcdtest.NewStore(t)
	newPool(t, ds, "pool1", "10.65.0.0/24", 26)
	h := start(t, ds)
	c := ctx(t)

	id := pod("ns-a", "web-1", "c0ffee")
	as, err := h.client.AssignIPs(c, &agentpb.AssignIPsRequest{HandleId: "k8s-pod-network.c0ffee", Workload: id, AssignIpv4: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(as.Ips) != 1 || !strings.HasPrefix(as.Ips[0], "10.65.0.") || !strings.HasSuffix(as.Ips[0], "/32") {
		t.Fatalf("AssignIPs = %v, want one /32 from 10.65.0.0/24", as.Ips)
	}
	// A retried ADD gets the same address back, not a second one.
	again, err := h.client.AssignIPs(c, &agentpb.AssignIPsRequest{Workload: id, AssignIpv4: true})
	if err != nil || !slices.Equal(again.Ips, as.Ips) {
		t.Fatalf("repeated AssignIPs = %v, %v; want %v", again.GetIps(), err, as.Ips)
	}

	add, err := h.client.AddWorkload(c, &agentpb.AddWorkloadRequest{
		Workload: id, InterfaceName: "cali1234567890a", Mac: "EE:EE:EE:00:00:01", Ips: as.Ips, Labels: map[string]string{"app": "web"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if add.EndpointName != "node--1-k8s-web--1-eth0" || add.Mtu != 1480 {
		t.Fatalf("AddWorkload = %v", add)
	}
	r, err := ds.Get(c, v3.Key{Kind: "WorkloadEndpoint", Namespace: "ns-a", Name: add.EndpointName})
	if err != nil {
		t.Fatal(err)
	}
	wep := r.(*v3.WorkloadEndpoint)
	s := wep.Spec
	if s.Node != "node-1" || s.Orchestrator != "k8s" || s.Pod != "web-1" || s.ContainerID != "c0ffee" || s.Endpoint != "eth0" ||
		s.InterfaceName != "cali1234567890a" || s.MAC != "ee:ee:ee:00:00:01" || !slices.Equal(s.IPNetworks, as.Ips) ||
		!slices.Equal(s.Profiles, []string{"kns.ns-a"}) {
		t.Errorf("stored endpoint spec %+v", s)
	}
	if l := wep.Labels; l["app"] != "web" || l[v3.LabelNamespace] != "ns-a" || l[v3.LabelOrchestrator] != "k8s" {
		t.Errorf("stored endpoint labels %v", l)
	}
	if h.dp.count() != 1 {
		t.Fatal("AddWorkload returned before the dataplane programmed the route")
	}

	chk, err := h.client.CheckWorkload(c, &agentpb.CheckWorkloadRequest{Workload: id, InterfaceName: "cali1234567890a", Ips: as.Ips, HandleId: "k8s-pod-network.c0ffee"})
	if err != nil || len(chk.Problems) != 0 {
		t.Fatalf("CheckWorkload = %v, %v; want no problems", chk.GetProblems(), err)
	}
	chk, err = h.client.CheckWorkload(c, &agentpb.CheckWorkloadRequest{Workload: id, Ips: []string{"10.65.0.200/32"}, HandleId: "k8s-pod-network.c0ffee"})
	if err != nil || len(chk.Problems) != 2 {
		t.Fatalf("CheckWorkload with a wrong address = %v, %v; want 2 problems", chk.GetProblems(), err)
	}

	// The DEL of an older sandbox of the same pod leaves the endpoint alone.
	del, err := h.client.DelWorkload(c, &agentpb.DelWorkloadRequest{Workload: pod("ns-a", "web-1", "0ldc0ffee")})
	if err != nil || del.Found {
		t.Fatalf("DelWorkload(other container) = %v, %v", del, err)
	}
	if _, err := ds.Get(c, v3.KeyOf(wep)); err != nil || h.dp.count() != 1 {
		t.Fatalf("endpoint or route gone after another container's DEL: %v", err)
	}

	del, err = h.client.DelWorkload(c, &agentpb.DelWorkloadRequest{Workload: id})
	if err != nil || !del.Found {
		t.Fatalf("DelWorkload = %v, %v", del, err)
	}
	if _, err := ds.Get(c, v3.KeyOf(wep)); !datastore.IsNotFound(err) || h.dp.count() != 0 {
		t.Fatalf("endpoint still there (%v) or route left (%d)", err, h.dp.count())
	}
	del, err = h.client.DelWorkload(c, &agentpb.DelWorkloadRequest{Workload: id})
	if err != nil || del.Found {
		t.Fatalf("second DelWorkload = %v, %v; want success, not found", del, err)
	}

	rel, err := h.client.ReleaseIPs(c, &agentpb.ReleaseIPsRequest{HandleId: "k8s-pod-network.c0ffee"})
	if err != nil || !slices.Equal(rel.Released, as.Ips) {
		t.Fatalf("ReleaseIPs = %v, %v", rel.GetReleased(), err)
	}
	if ips, err := h.ipam.IPsByHandle(c, "k8s-pod-network.c0ffee"); err != nil || len(ips) != 0 {
		t.Fatalf("handle still holds %v (%v)", ips, err)
	}
	if rep, err := h.ipam.Check(c); err != nil || len(rep.Allocations) != 0 {
		t.Fatalf("allocations left: %+v (%v)", rep, err)
	}
	if rel, err := h.client.ReleaseIPs(c, &agentpb.ReleaseIPsRequest{HandleId: "k8s-pod-network.unknown"}); err != nil || len(rel.Released) != 0 {
		t.Fatalf("releasing an unknown handle = %v, %v; want success", rel, err)
	}

	for metric, want := range map[string]float64{
		`tabby_cni_requests_total{result="OK",rpc="AddWorkload"}`: 1,
		`tabby_cni_requests_total{result="OK",rpc="DelWorkload"}`: 3,
		`tabby_ipam_allocations_total{family="4"}`:                1,
		`tabby_ipam_releases_total{family="4"}`:                   1,
	} {
		name, labels, _ := strings.Cut(metric, "{")
		got := metricValue(t, h.reg, name, "{"+labels)
		if got != want {
			t.Errorf("%s = %v, want %v", metric, got, want)
		}
	}
}

func metricValue(t *testing.T, reg *prometheus.Registry, name, labels string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, lp := range m.GetLabel() {
				parts = append(parts, lp.GetName()+`="`+lp.GetValue()+`"`)
			}
			if "{"+strings.Join(parts, ",")+"}" == labels {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s%s not exported", name, labels)
	return 0
}

func TestErrorsSayWhatToFix(t *testing.T) {
	ds := etcdtest.NewStore(t)
	h := start(t, ds)
	c := ctx(t)

	// No pool at all.
	_, err := h.client.AssignIPs(c, &agentpb.AssignIPsRequest{Workload: pod("ns", "p0", "c0"), AssignIpv4: true})
	wantCode(t, err, codes.FailedPrecondition, "create an IP pool that selects this node")

	newPool(t, ds, "tiny", "10.66.0.0/30", 30)
	// An unknown requested pool is the caller's mistake.
	_, err = h.client.AssignIPs(c, &agentpb.AssignIPsRequest{Workload: pod("ns", "p0", "c0"), AssignIpv4: true, Ipv4Pools: []string{"nope"}})
	wantCode(t, err, codes.InvalidArgument, `IP pool "nope" does not exist`)

	// Exhaustion names the pool.
	for i := range 4 {
		cid := "c" + string(rune('a'+i))
		if _, err := h.client.AssignIPs(c, &agentpb.AssignIPsRequest{Workload: pod("ns", "p"+cid, cid), AssignIpv4: true}); err != nil {
			t.Fatalf("assign %d of 4: %v", i+1, err)
		}
	}
	_, err = h.client.AssignIPs(c, &agentpb.AssignIPsRequest{Workload: pod("ns", "full", "cfull"), AssignIpv4: true})
	wantCode(t, err, codes.ResourceExhausted, "10.66.0.0/30")

	// Malformed requests.
	_, err = h.client.AssignIPs(c, &agentpb.AssignIPsRequest{})
	wantCode(t, err, codes.InvalidArgument, "handle_id is empty")
	_, err = h.client.AssignIPs(c, &agentpb.AssignIPsRequest{HandleId: "h"})
	wantCode(t, err, codes.InvalidArgument, "neither assign_ipv4 nor assign_ipv6")
	_, err = h.client.AddWorkload(c, &agentpb.AddWorkloadRequest{Workload: pod("ns", "p", "c"), InterfaceName: "cali0", Ips: []string{"10.66.0.1/30"}})
	wantCode(t, err, codes.InvalidArgument, "is not a host prefix")
	_, err = h.client.AddWorkload(c, &agentpb.AddWorkloadRequest{Workload: pod("ns", "p", "c"), InterfaceName: "cali0", Ips: []string{"10.66.0.1/32"}, Mac: "zz"})
	wantCode(t, err, codes.InvalidArgument, `mac "zz"`)
	_, err = h.client.DelWorkload(c, &agentpb.DelWorkloadRequest{})
	wantCode(t, err, codes.InvalidArgument, "workload is missing")

	// A dataplane failure fails the ADD and leaves no endpoint behind.
	h.dp.failAdd = errors.New("interface cali0 does not exist")
	_, err = h.client.AddWorkload(c, &agentpb.AddWorkloadRequest{Workload: pod("ns", "p", "c"), InterfaceName: "cali0", Ips: []string{"10.66.0.1/32"}})
	wantCode(t, err, codes.Internal, "program the host route: interface cali0 does not exist")
	if l, _ := ds.List(c, "WorkloadEndpoint", ""); len(l.Items) != 0 {
		t.Errorf("failed ADD left %d endpoints", len(l.Items))
	}
	h.dp.failAdd = nil

	// A bug in one call is that call's error, not the end of the agent.
	h.dp.panic = true
	_, err = h.client.AddWorkload(c, &agentpb.AddWorkloadRequest{Workload: pod("ns", "p", "c"), InterfaceName: "cali0", Ips: []string{"10.66.0.1/32"}})
	wantCode(t, err, codes.Internal, "calico-node hit a bug handling AddWorkload")
	h.dp.panic = false
	if _, err := h.client.Status(c, &agentpb.StatusRequest{}); err != nil {
		t.Fatalf("agent dead after a panic: %v", err)
	}
	// The lock was released by the panicking call.
	if _, err := h.client.AddWorkload(c, &agentpb.AddWorkloadRequest{Workload: pod("ns", "p", "c"), InterfaceName: "cali0", Ips: []string{"10.66.0.1/32"}}); err != nil {
		t.Fatalf("AddWorkload after a panic: %v", err)
	}

	// Garbage from raw bytes on the socket does not hurt the server.
	conn, err := net.Dial("unix", h.socket)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x01\xff\xff\xff\xff garbage"))
	conn.Close()
	if _, err := h.client.Status(c, &agentpb.StatusRequest{}); err != nil {
		t.Fatalf("agent dead after garbage on its socket: %v", err)
	}
	if got := metricValue(t, h.reg, MetricCNIRequests, `{result="ResourceExhausted",rpc="AssignIPs"}`); got != 1 {
		t.Errorf("AssignIPs ResourceExhausted counted %v times, want 1", got)
	}
}

// TestDatastoreDown: with etcd unreachable the agent answers Unavailable
// (retry later), and works again when it is back.
func TestDatastoreDown(t *testing.T) {
	e := etcdtest.Start(t)
	newPool(t, etcdtest.Connect(t, e.Endpoints()...), "pool1", "10.67.0.0/24", 26)
	proxy := etcdtest.NewProxy(t, e.Endpoints()[0])
	ds, err := etcd.New(datastore.EtcdConfig{Endpoints: []string{proxy.Endpoint()}, RequestTimeout: time.Second, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	h := start(t, ds)
	c := ctx(t)

	proxy.Disconnect()
	_, err = h.client.AssignIPs(c, &agentpb.AssignIPsRequest{Workload: pod("ns", "p", "c1"), AssignIpv4: true})
	wantCode(t, err, codes.Unavailable, "the datastore is unreachable")
	_, err = h.client.DelWorkload(c, &agentpb.DelWorkloadRequest{Workload: pod("ns", "p", "c1")})
	wantCode(t, err, codes.Unavailable, "delete pod ns/p")

	proxy.Reconnect()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err = h.client.AssignIPs(c, &agentpb.AssignIPsRequest{Workload: pod("ns", "p", "c1"), AssignIpv4: true})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("agent did not recover after the datastore came back: %v", err)
	}
}

func TestGarbageCollect(t *testing.T) {
	ds := etcdtest.NewStore(t)
	newPool(t, ds, "pool1", "10.68.0.0/24", 26)
	h := start(t, ds)
	c := ctx(t)
	for _, cid := range []string{"keep", "gone"} {
		id := pod("ns", "p-"+cid, cid)
		as, err := h.client.AssignIPs(c, &agentpb.AssignIPsRequest{Workload: id, AssignIpv4: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.client.AddWorkload(c, &agentpb.AddWorkloadRequest{Workload: id, InterfaceName: "cali" + cid, Ips: as.Ips}); err != nil {
			t.Fatal(err)
		}
	}
	// An allocation without an endpoint (an ADD that died half way, longer
	// ago than the grace period: written as the agent would have, with an
	// old timestamp).
	if _, _, _, err := h.ipam.AssignOnce(c, ipam.AssignArgs{HandleID: "k8s-pod-network.half", Node: "node-1", Num4: 1,
		Attrs: map[string]string{ipam.AttributeNamespace: "ns", ipam.AttributePod: "half",
			ipam.AttributeTimestamp: time.Now().Add(-2 * gcGrace).UTC().String()}}); err != nil {
		t.Fatal(err)
	}
	// ADDs in flight: allocated, no AddWorkload yet. One through this
	// agent (it knows the ADD is running), one through another agent
	// instance (only the allocation's timestamp says it is young).
	if _, err := h.client.AssignIPs(c, &agentpb.AssignIPsRequest{Workload: pod("ns", "p-starting", "starting"), AssignIpv4: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := h.ipam.AssignOnce(c, ipam.AssignArgs{HandleID: "k8s-pod-network.fresh", Node: "node-1", Num4: 1,
		Attrs: map[string]string{ipam.AttributeNamespace: "ns", ipam.AttributePod: "fresh"}}); err != nil {
		t.Fatal(err)
	}
	gc, err := h.client.GarbageCollect(c, &agentpb.GarbageCollectRequest{Valid: []*agentpb.WorkloadID{{ContainerId: "keep", Endpoint: "eth0"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"k8s-pod-network.gone", "k8s-pod-network.half"}; !slices.Equal(gc.ReleasedHandles, want) {
		t.Errorf("released %v, want %v", gc.ReleasedHandles, want)
	}
	for _, inFlight := range []string{"k8s-pod-network.starting", "k8s-pod-network.fresh"} {
		if ips, err := h.ipam.IPsByHandle(c, inFlight); err != nil || len(ips) != 1 {
			t.Errorf("GC released the addresses of an ADD in flight (%s): %v, %v", inFlight, ips, err)
		}
	}
	if ips, _ := h.ipam.IPsByHandle(c, "k8s-pod-network.half"); len(ips) != 0 {
		t.Errorf("GC kept an old orphan's addresses: %v", ips)
	}
	// Once the ADD in flight through this agent completes, a GC that does
	// not list it removes it like any other: its endpoint shows the ADD is
	// over, whatever the allocation's age.
	if _, err := h.client.AddWorkload(c, &agentpb.AddWorkloadRequest{Workload: pod("ns", "p-starting", "starting"), InterfaceName: "calistarting", Ips: []string{mustIPs(t, h, "k8s-pod-network.starting")}}); err != nil {
		t.Fatal(err)
	}
	gc, err = h.client.GarbageCollect(c, &agentpb.GarbageCollectRequest{Valid: []*agentpb.WorkloadID{{ContainerId: "keep", Endpoint: "eth0"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"k8s-pod-network.starting"}; !slices.Equal(gc.ReleasedHandles, want) {
		t.Errorf("second GC released %v, want %v", gc.ReleasedHandles, want)
	}
	l, err := ds.List(c, "WorkloadEndpoint", "")
	if err != nil || len(l.Items) != 1 || l.Items[0].(*v3.WorkloadEndpoint).Spec.ContainerID != "keep" {
		t.Errorf("endpoints after GC: %v (%v), want only keep's", l.Items, err)
	}
	if ips, _ := h.ipam.IPsByHandle(c, "k8s-pod-network.keep"); len(ips) != 1 {
		t.Errorf("GC released a valid container's address: %v", ips)
	}
	if h.dp.count() != 1 {
		t.Errorf("%d routes after GC, want 1", h.dp.count())
	}
}

// mustIPs is the handle's one address as a host prefix.
func mustIPs(t *testing.T, h *harness, handle string) string {
	t.Helper()
	ips, err := h.ipam.IPsByHandle(ctx(t), handle)
	if err != nil || len(ips) != 1 {
		t.Fatalf("addresses of %s: %v, %v", handle, ips, err)
	}
	return hostPrefix(ips[0]).String()
}
