package daemon

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tabbynet/tabby/api/agentpb"
	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
	"github.com/tabbynet/tabby/felix/dataplane"
	"github.com/tabbynet/tabby/internal/testutil"
	"github.com/tabbynet/tabby/ipam"
	"github.com/tabbynet/tabby/node/autodetect"
	"github.com/tabbynet/tabby/node/config"
	"github.com/tabbynet/tabby/node/health"
)

// nsSystem detects addresses inside a test namespace.
type nsSystem struct{ n ns.NetNS }

func (s nsSystem) Interfaces() (out []autodetect.Interface, err error) {
	derr := s.n.Do(func(ns.NetNS) error {
		out, err = autodetect.Host().Interfaces()
		return nil
	})
	if derr != nil {
		return nil, derr
	}
	return out, err
}

func (s nsSystem) SourceAddr(dest string, family int) (a netip.Addr, err error) {
	derr := s.n.Do(func(ns.NetNS) error {
		a, err = autodetect.Host().SourceAddr(dest, family)
		return nil
	})
	if derr != nil {
		return netip.Addr{}, derr
	}
	return a, err
}

// node is a network namespace standing in for a host: a NIC (ens5, a veth)
// with the node address, and room for pod veths.
type node struct {
	ns ns.NetNS
	h  *netlink.Handle
}

func newNode(t *testing.T) *node {
	t.Helper()
	testutil.RequirePrivileged(t)
	n := testutil.NewNetNS(t, "tabby-node")
	h, err := netlink.NewHandleAt(netns.NsHandle(n.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	nd := &node{ns: n, h: h}
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	nd.veth(t, "ens5", "ens5p", "10.10.0.2/24")
	return nd
}

// veth adds name<->peer, both up, with addr on name (if any).
func (nd *node) veth(t *testing.T, name, peer, addr string) {
	t.Helper()
	if err := nd.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}); err != nil {
		t.Fatalf("add veth %s: %v", name, err)
	}
	for _, l := range []string{name, peer} {
		link, err := nd.h.LinkByName(l)
		if err != nil {
			t.Fatal(err)
		}
		if l == name && addr != "" {
			a, _ := netlink.ParseAddr(addr)
			if err := nd.h.AddrAdd(link, a); err != nil {
				t.Fatal(err)
			}
		}
		if err := nd.h.LinkSetUp(link); err != nil {
			t.Fatal(err)
		}
	}
}

// routeVia is the device of the kernel's route to dst ("" if none).
func (nd *node) routeVia(t *testing.T, dst string) string {
	t.Helper()
	p := netip.MustParsePrefix(dst)
	routes, err := nd.h.RouteListFiltered(unix.AF_INET, &netlink.Route{Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if l, err := nd.h.LinkByIndex(r.LinkIndex); err == nil {
			return l.Attrs().Name
		}
	}
	return ""
}

func testConfig(t *testing.T, kv ...string) config.Config {
	t.Helper()
	m := map[string]string{
		"NODENAME":                       "node-x",
		"CALICO_AGENT_SOCKET":            filepath.Join(t.TempDir(), "calico", "agent.sock"),
		"TABBY_NODENAME_FILE":            filepath.Join(t.TempDir(), "nodename"),
		"FELIX_HEALTHHOST":               "127.0.0.1",
		"FELIX_HEALTHPORT":               "0",
		"FELIX_PROMETHEUSMETRICSENABLED": "true",
		"FELIX_PROMETHEUSMETRICSHOST":    "127.0.0.1",
		"FELIX_PROMETHEUSMETRICSPORT":    "0",
		"CALICO_IPV4POOL_CIDR":           "10.70.0.0/24",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	cfg, err := config.FromEnv(func(k string) string { return m[k] }, os.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (nd *node) options(t *testing.T) Options {
	return Options{
		Log:           etcdtest.Logger(t),
		System:        nsSystem{nd.ns},
		Dataplane:     dataplane.NewReconciler(nd.h, dataplane.ProcSys{NetNS: nd.ns}, etcdtest.Logger(t)),
		ProbeInterval: 100 * time.Millisecond,
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond until it holds; the deadline only bounds a hang.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after 30s; last: %s", what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func dialAgent(t *testing.T, socket string) agentpb.AgentClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return agentpb.NewAgentClient(conn)
}

func readyURL(d *Daemon) string { return "http://" + d.HealthAddr() + "/readiness" }

// TestNodeEndToEnd runs the whole daemon against a real etcd and the real
// Felix on a network namespace, and drives a pod's life through the agent
// socket as the CNI plugins do.
func TestNodeEndToEnd(t *testing.T) {
	nd := newNode(t)
	const podIf, oldIf = "cali0123456789a", "calib0b0b0b0b0b"
	nd.veth(t, podIf, "pod0", "")
	nd.veth(t, oldIf, "pod1", "")
	e := etcdtest.Start(t)
	cfg := testConfig(t, "ETCD_ENDPOINTS", e.Endpoints()[0], "AS", "64555")
	d := New(cfg, nd.options(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			d.Stop()
		}
	}()

	ds := etcdtest.Connect(t, e.Endpoints()...)
	n, err := ds.Get(ctx, v3.Key{Kind: "Node", Name: "node-x"})
	if err != nil {
		t.Fatal(err)
	}
	if b := n.(*v3.Node).Spec.BGP; b == nil || b.IPv4Address != "10.10.0.2/24" || b.ASNumber == nil || *b.ASNumber != 64555 {
		t.Fatalf("node bgp spec %+v", b)
	}
	if p, err := ds.Get(ctx, v3.Key{Kind: "IPPool", Name: "default-ipv4-ippool"}); err != nil || p.(*v3.IPPool).Spec.CIDR != "10.70.0.0/24" {
		t.Fatalf("default pool: %v %v", p, err)
	}

	// Health flips to ready once Felix has synced and applied.
	eventually(t, "readiness", func() (bool, string) {
		code, body := httpGet(t, readyURL(d))
		return code == http.StatusOK, body
	})
	if code, body := httpGet(t, "http://"+d.HealthAddr()+"/liveness"); code != http.StatusOK {
		t.Fatalf("liveness %d\n%s", code, body)
	}
	// What `calico-node -felix-ready` does.
	if err := health.Probe(ctx, d.HealthAddr(), "/readiness"); err != nil {
		t.Fatalf("readiness probe: %v", err)
	}

	fi, err := os.Stat(cfg.AgentSocket)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("agent socket %v (%v), want a 0600 socket", fi.Mode(), err)
	}
	agent := dialAgent(t, cfg.AgentSocket)
	st, err := agent.Status(ctx, &agentpb.StatusRequest{})
	if err != nil || st.NodeName != "node-x" || !st.Ready || st.Mtu != 1500 {
		t.Fatalf("Status = %v, %v", st, err)
	}

	id := &agentpb.WorkloadID{Orchestrator: "k8s", Namespace: "default", Pod: "web", ContainerId: "c1", Endpoint: "eth0"}
	as, err := agent.AssignIPs(ctx, &agentpb.AssignIPsRequest{Workload: id, AssignIpv4: true})
	if err != nil {
		t.Fatal(err)
	}
	ip := as.Ips[0]
	if _, err := agent.AddWorkload(ctx, &agentpb.AddWorkloadRequest{Workload: id, InterfaceName: podIf, Ips: as.Ips}); err != nil {
		t.Fatal(err)
	}
	// AddWorkload returned: the route is already in the kernel.
	if dev := nd.routeVia(t, ip); dev != podIf {
		t.Fatalf("route to %s via %q after AddWorkload, want %s", ip, dev, podIf)
	}
	chk, err := agent.CheckWorkload(ctx, &agentpb.CheckWorkloadRequest{Workload: id, InterfaceName: podIf, Ips: as.Ips, HandleId: "k8s-pod-network.c1"})
	if err != nil || len(chk.Problems) != 0 {
		t.Fatalf("CheckWorkload = %v, %v", chk.GetProblems(), err)
	}

	// An older sandbox's DEL leaves the pod alone.
	old := &agentpb.WorkloadID{Orchestrator: "k8s", Namespace: "default", Pod: "web", ContainerId: "c0", Endpoint: "eth0"}
	if del, err := agent.DelWorkload(ctx, &agentpb.DelWorkloadRequest{Workload: old}); err != nil || del.Found {
		t.Fatalf("DelWorkload(old sandbox) = %v, %v", del, err)
	}
	wepKey := v3.Key{Kind: "WorkloadEndpoint", Namespace: "default", Name: "node--x-k8s-web-eth0"}
	if _, err := ds.Get(ctx, wepKey); err != nil {
		t.Fatalf("endpoint gone after an older sandbox's DEL: %v", err)
	}
	if dev := nd.routeVia(t, ip); dev != podIf {
		t.Fatalf("route gone after an older sandbox's DEL (via %q)", dev)
	}

	if del, err := agent.DelWorkload(ctx, &agentpb.DelWorkloadRequest{Workload: id}); err != nil || !del.Found {
		t.Fatalf("DelWorkload = %v, %v", del, err)
	}
	if _, err := ds.Get(ctx, wepKey); !datastore.IsNotFound(err) {
		t.Fatalf("endpoint still there after DEL: %v", err)
	}
	if dev := nd.routeVia(t, ip); dev != "" {
		t.Fatalf("route to %s still via %s after DelWorkload", ip, dev)
	}
	if rel, err := agent.ReleaseIPs(ctx, &agentpb.ReleaseIPsRequest{HandleId: "k8s-pod-network.c1"}); err != nil || len(rel.Released) != 1 {
		t.Fatalf("ReleaseIPs = %v, %v", rel, err)
	}
	rep, err := ipam.New(ds, nil).Check(ctx)
	if err != nil || len(rep.Allocations) != 0 {
		t.Fatalf("allocations left after release: %+v (%v)", rep.Allocations, err)
	}

	// A second pod stays up across a restart of calico-node.
	id2 := &agentpb.WorkloadID{Orchestrator: "k8s", Namespace: "default", Pod: "db", ContainerId: "c2", Endpoint: "eth0"}
	as2, err := agent.AssignIPs(ctx, &agentpb.AssignIPsRequest{Workload: id2, AssignIpv4: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.AddWorkload(ctx, &agentpb.AddWorkloadRequest{Workload: id2, InterfaceName: oldIf, Ips: as2.Ips}); err != nil {
		t.Fatal(err)
	}

	code, metrics := httpGet(t, "http://"+d.MetricsAddr()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics %d", code)
	}
	for _, want := range []string{
		`tabby_cni_requests_total{result="OK",rpc="AddWorkload"} 2`,
		`tabby_cni_requests_total{result="OK",rpc="DelWorkload"} 2`,
		`tabby_cni_request_duration_seconds_bucket{rpc="AddWorkload"`,
		`tabby_ipam_allocations_total{family="4"} 2`,
		`tabby_ipam_releases_total{family="4"} 1`,
		"tabby_felix_reconcile_duration_seconds_bucket",
		"tabby_felix_routes_programmed ",
		"tabby_build_info{",
		"go_goroutines ",
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	if err := d.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopped = true
	if _, err := os.Stat(cfg.AgentSocket); !os.IsNotExist(err) {
		t.Errorf("agent socket left behind after stop (%v)", err)
	}
	if dev := nd.routeVia(t, as2.Ips[0]); dev != oldIf {
		t.Errorf("stopping calico-node removed the route to a running pod (via %q)", dev)
	}
	if code, _ := httpGet(t, readyURL(d)); code != 0 {
		t.Errorf("health server still answering after stop")
	}
}

// TestDatastoreBlip: etcd goes away and comes back. calico-node keeps
// running, reports not ready meanwhile, and is ready again afterwards.
func TestDatastoreBlip(t *testing.T) {
	nd := newNode(t)
	e := etcdtest.Start(t)
	proxy := etcdtest.NewProxy(t, e.Endpoints()[0])
	cfg := testConfig(t, "ETCD_ENDPOINTS", proxy.Endpoint())
	cfg.Datastore.Etcd.RequestTimeout = time.Second
	cfg.Datastore.Etcd.DialTimeout = time.Second
	d := New(cfg, nd.options(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	eventually(t, "ready before the blip", func() (bool, string) {
		code, body := httpGet(t, readyURL(d))
		return code == http.StatusOK, body
	})

	proxy.Disconnect()
	eventually(t, "not ready while etcd is away", func() (bool, string) {
		code, body := httpGet(t, readyURL(d))
		return code == http.StatusServiceUnavailable && strings.Contains(body, "datastore"), body
	})
	if code, body := httpGet(t, "http://"+d.HealthAddr()+"/liveness"); code != http.StatusOK {
		t.Fatalf("a datastore blip made calico-node not live (%d):\n%s", code, body)
	}
	proxy.Reconnect()
	eventually(t, "ready again after the blip", func() (bool, string) {
		code, body := httpGet(t, readyURL(d))
		return code == http.StatusOK, body
	})
	select {
	case err := <-d.Failed():
		t.Fatalf("calico-node failed during the blip: %v", err)
	default:
	}
}

// TestWaitForDatastore: with WAIT_FOR_DATASTORE=true start waits for etcd;
// without it start fails at once, naming the endpoint.
func TestWaitForDatastore(t *testing.T) {
	nd := newNode(t)
	e := etcdtest.Start(t)
	proxy := etcdtest.NewProxy(t, e.Endpoints()[0])
	proxy.Disconnect()

	cfg := testConfig(t, "ETCD_ENDPOINTS", proxy.Endpoint())
	cfg.Datastore.Etcd.RequestTimeout = 500 * time.Millisecond
	cfg.Datastore.Etcd.DialTimeout = 500 * time.Millisecond
	err := New(cfg, nd.options(t)).Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "reach the datastore (etcd at "+proxy.Endpoint()+")") ||
		!strings.Contains(err.Error(), "set WAIT_FOR_DATASTORE=true to wait for it") {
		t.Fatalf("start without WAIT_FOR_DATASTORE: %v", err)
	}

	cfg.WaitForDatastore = true
	opts := nd.options(t)
	opts.MaxWaitBackoff = 200 * time.Millisecond
	d := New(cfg, opts)
	started := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() { started <- d.Start(ctx) }()
	select {
	case err := <-started:
		t.Fatalf("start returned while etcd was unreachable: %v", err)
	case <-time.After(time.Second):
	}
	proxy.Reconnect()
	if err := <-started; err != nil {
		t.Fatalf("start after etcd came back: %v", err)
	}
	d.Stop()
}
