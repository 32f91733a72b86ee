package controller_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tabbynet/tabby/api/agentpb"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
	"github.com/tabbynet/tabby/felix/dataplane"
	"github.com/tabbynet/tabby/internal/tcpfwd"
	"github.com/tabbynet/tabby/internal/testutil"
)

// This file runs the real thing: two calico-node processes, each in its own
// network namespace standing for a host, wired by a veth "cable", sharing a
// real etcd; a pod (a veth into a pod namespace, registered through the
// agent API as the CNI plugin does) on each. It checks that the blocks are
// exchanged over BGP and programmed `via` the other node with protocol 98,
// that the pods ping each other, `calicoctl node status`, and that
// restarting an agent neither withdraws nor re-adds a route anywhere.

const e2eWait = 60 * time.Second

// binaries builds calico-node and calicoctl once per test binary.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("find the module root: %w", err)
			return
		}
		binDir, err = os.MkdirTemp("", "tabby-bgp-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/calico-node", "./cmd/calicoctl")
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(root)))
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

type host struct {
	name   string
	addr   netip.Addr
	ns     ns.NetNS
	h      *netlink.Handle
	dir    string
	socket string
	env    []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	logs *bytes.Buffer
	exit chan struct{}
}

func nsHandle(t *testing.T, n ns.NetNS) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(netns.NsHandle(n.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func linkUp(t *testing.T, h *netlink.Handle, name string, addr string) {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if addr != "" {
		a, err := netlink.ParseAddr(addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.AddrAdd(l, a); err != nil {
			t.Fatalf("add %s to %s: %v", addr, name, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
}

// forwardEtcd makes etcd (on the test's loopback) reachable at
// 127.0.0.1:2379 inside n: the listening socket is made in n, the
// connections to etcd from the test's own namespace.
func forwardEtcd(t *testing.T, n ns.NetNS, target string) {
	t.Helper()
	var ln net.Listener
	err := n.Do(func(ns.NetNS) error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:2379")
		return err
	})
	if err != nil {
		t.Fatalf("etcd forwarder: %v", err)
	}
	fwd := tcpfwd.Serve(ln, target)
	t.Cleanup(func() { fwd.Close() })
}

// newHosts makes two host namespaces joined by a veth cable on 10.99.0.0/24.
func newHosts(t *testing.T, etcdAddr string) []*host {
	t.Helper()
	var hs []*host
	for i := 1; i <= 2; i++ {
		h := &host{name: fmt.Sprintf("n%d", i), addr: netip.AddrFrom4([4]byte{10, 99, 0, byte(i)}), dir: t.TempDir()}
		h.ns = testutil.NewNetNS(t, "tabby-bgp")
		h.h = nsHandle(t, h.ns)
		linkUp(t, h.h, "lo", "")
		h.socket = filepath.Join(h.dir, "agent.sock")
		h.env = []string{
			"NODENAME=" + h.name, "IP=" + h.addr.String() + "/24",
			"DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS=http://127.0.0.1:2379",
			"CALICO_IPV4POOL_CIDR=10.244.0.0/16", "CALICO_IPV4POOL_IPIP=Never",
			"CALICO_AGENT_SOCKET=" + h.socket, "TABBY_NODENAME_FILE=none",
			"FELIX_HEALTHHOST=127.0.0.1", "FELIX_IPV6SUPPORT=false", "CALICO_LOG_LEVEL=info",
		}
		forwardEtcd(t, h.ns, etcdAddr)
		hs = append(hs, h)
	}
	// The cable: made in n1, one end moved to n2; the host's own
	// namespace is never touched.
	if err := hs[0].h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "cable"}); err != nil {
		t.Fatal(err)
	}
	peer, err := hs[0].h.LinkByName("cable")
	if err != nil {
		t.Fatal(err)
	}
	if err := hs[0].h.LinkSetNsFd(peer, int(hs[1].ns.Fd())); err != nil {
		t.Fatal(err)
	}
	cable, err := hs[1].h.LinkByName("cable")
	if err != nil {
		t.Fatal(err)
	}
	if err := hs[1].h.LinkSetName(cable, "eth0"); err != nil {
		t.Fatal(err)
	}
	for i, h := range hs {
		linkUp(t, h.h, "eth0", h.addr.String()+"/24")
		// A default route, as a real host has: proxy ARP for the pods'
		// 169.254.1.1 gateway needs a route that covers it.
		gw := hs[1-i].addr
		if err := h.h.RouteAdd(&netlink.Route{Gw: gw.AsSlice()}); err != nil {
			t.Fatal(err)
		}
	}
	return hs
}

// start runs calico-node in the host's namespace.
func (h *host) start(t *testing.T, bin string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	cmd := exec.Command("ip", "netns", "exec", filepath.Base(h.ns.Path()), filepath.Join(bin, "calico-node"))
	cmd.Env = append(os.Environ(), h.env...)
	h.logs = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = h.logs, h.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.cmd, h.exit = cmd, make(chan struct{})
	exit := h.exit
	go func() { _ = cmd.Wait(); close(exit) }()
	t.Cleanup(func() { h.stop(t) })
}

// stop sends SIGTERM to the calico-node this test started (by PID) and
// waits for it.
func (h *host) stop(t *testing.T) {
	h.mu.Lock()
	cmd, exit := h.cmd, h.exit
	h.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exit:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exit:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exit
		t.Errorf("%s: calico-node did not stop on SIGTERM", h.name)
	}
	if t.Failed() {
		t.Logf("%s calico-node log:\n%s", h.name, h.logs.String())
	}
}

func (h *host) agent(t *testing.T) agentpb.AgentClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+h.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return agentpb.NewAgentClient(conn)
}

func waitFor(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, e2eWait, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *host) waitEstablished(t *testing.T, peer netip.Addr) {
	t.Helper()
	a := h.agent(t)
	waitFor(t, h.name+" established with "+peer.String(), func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := a.Status(ctx, &agentpb.StatusRequest{})
		if err != nil {
			return err.Error()
		}
		for _, p := range st.Peers {
			if p.Address == peer.String() && p.State == "Established" {
				return ""
			}
		}
		return fmt.Sprint(st.Peers)
	})
}

// pod makes a pod namespace with eth0 (a veth whose host side is cali...
// in h), gets an address from the agent and registers the workload, as the
// calico CNI plugin does. It returns the pod's address.
func (h *host) pod(t *testing.T, name string) (netip.Addr, ns.NetNS) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := h.agent(t)
	id := &agentpb.WorkloadID{Orchestrator: "k8s", Namespace: "default", Pod: name, ContainerId: "c-" + name, Endpoint: "eth0"}
	as, err := a.AssignIPs(ctx, &agentpb.AssignIPsRequest{HandleId: "k8s-pod-network.c-" + name, Workload: id, AssignIpv4: true})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParsePrefix(as.Ips[0])
	podNS := testutil.NewNetNS(t, "tabby-bgp-pod")
	ph := nsHandle(t, podNS)
	hostIf := "cali" + fmt.Sprintf("%011x", ip.Addr().As4()[3])[:11]
	if err := h.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostIf}, PeerName: "p-" + name}); err != nil {
		t.Fatal(err)
	}
	podEnd, err := h.h.LinkByName("p-" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.h.LinkSetNsFd(podEnd, int(podNS.Fd())); err != nil {
		t.Fatal(err)
	}
	pe, err := ph.LinkByName("p-" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := ph.LinkSetName(pe, "eth0"); err != nil {
		t.Fatal(err)
	}
	linkUp(t, ph, "lo", "")
	linkUp(t, ph, "eth0", ip.String())
	linkUp(t, h.h, hostIf, "")
	eth0, _ := ph.LinkByName("eth0")
	gw := net.IPv4(169, 254, 1, 1)
	if err := ph.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: &net.IPNet{IP: gw, Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK}); err != nil {
		t.Fatal(err)
	}
	if err := ph.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddWorkload(ctx, &agentpb.AddWorkloadRequest{Workload: id, InterfaceName: hostIf, Ips: as.Ips, Netns: podNS.Path()}); err != nil {
		t.Fatal(err)
	}
	return ip.Addr(), podNS
}

// remoteRoutes lists h's protocol-98 routes via a gateway, as text.
func (h *host) remoteRoutes(t *testing.T) []string {
	t.Helper()
	routes, err := h.h.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: dataplane.RouteProtocol},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range routes {
		if r.Gw == nil || r.Dst == nil {
			continue
		}
		dev := ""
		if l, err := h.h.LinkByIndex(r.LinkIndex); err == nil {
			dev = l.Attrs().Name
		}
		out = append(out, fmt.Sprintf("%s via %s dev %s proto %d", r.Dst, r.Gw, dev, r.Protocol))
	}
	return out
}

func ping(t *testing.T, from ns.NetNS, to netip.Addr) string {
	out, err := exec.Command("ip", "netns", "exec", filepath.Base(from.Path()), "ping", "-c", "1", "-W", "2", to.String()).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("ping %s: %v\n%s", to, err, out)
	}
	return ""
}

// watchDeletes records every route deletion in h's kernel until the test
// ends.
func (h *host) watchDeletes(t *testing.T) func() []string {
	t.Helper()
	ch := make(chan netlink.RouteUpdate, 1024)
	done := make(chan struct{})
	nsh, err := netns.GetFromPath(h.ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsh.Close() })
	if err := netlink.RouteSubscribeWithOptions(ch, done, netlink.RouteSubscribeOptions{Namespace: &nsh}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var deletes []string
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for u := range ch {
			if u.Type == unix.RTM_DELROUTE && u.Protocol == dataplane.RouteProtocol && u.Dst != nil {
				mu.Lock()
				deletes = append(deletes, u.Dst.String())
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { close(done) })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), deletes...)
	}
}

func block(a netip.Addr) string { return netip.PrefixFrom(a, 26).Masked().String() }

func TestTwoNodesOverBGP(t *testing.T) {
	testutil.RequirePrivileged(t)
	bin := binaries(t)
	e := etcdtest.Start(t)
	hs := newHosts(t, strings.TrimPrefix(e.Endpoints()[0], "http://"))
	n1, n2 := hs[0], hs[1]
	n1.start(t, bin)
	n2.start(t, bin)
	n1.waitEstablished(t, n2.addr)
	n2.waitEstablished(t, n1.addr)

	ip1, pod1 := n1.pod(t, "web-1")
	ip2, pod2 := n2.pod(t, "web-2")
	want1 := fmt.Sprintf("%s via %s dev eth0 proto 98", block(ip2), n2.addr)
	want2 := fmt.Sprintf("%s via %s dev eth0 proto 98", block(ip1), n1.addr)
	waitFor(t, "n1 routes n2's block via n2", func() string {
		if got := n1.remoteRoutes(t); len(got) != 1 || got[0] != want1 {
			return fmt.Sprintf("%q, want %q", got, want1)
		}
		return ""
	})
	waitFor(t, "n2 routes n1's block via n1", func() string {
		if got := n2.remoteRoutes(t); len(got) != 1 || got[0] != want2 {
			return fmt.Sprintf("%q, want %q", got, want2)
		}
		return ""
	})
	waitFor(t, "pod1 pings pod2", func() string { return ping(t, pod1, ip2) })
	waitFor(t, "pod2 pings pod1", func() string { return ping(t, pod2, ip1) })

	// calicoctl node status, Calico's format.
	out, err := exec.Command(filepath.Join(bin, "calicoctl"), "node", "status").CombinedOutput()
	if err == nil {
		t.Fatalf("calicoctl node status without CALICO_AGENT_SOCKET found an agent:\n%s", out)
	}
	cmd := exec.Command(filepath.Join(bin, "calicoctl"), "node", "status")
	cmd.Env = append(os.Environ(), "CALICO_AGENT_SOCKET="+n1.socket)
	out, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("calicoctl node status: %v\n%s", err, out)
	}
	wantStatus := regexp.MustCompile(`^Calico process is running\.

IPv4 BGP status
\+--------------\+-------------------\+-------\+----------\+-------------\+
\| PEER ADDRESS \|     PEER TYPE     \| STATE \|  SINCE   \|    INFO     \|
\+--------------\+-------------------\+-------\+----------\+-------------\+
\| 10\.99\.0\.2    \| node-to-node mesh \| up    \| \d\d:\d\d:\d\d \| Established \|
\+--------------\+-------------------\+-------\+----------\+-------------\+

IPv6 BGP status
No IPv6 peers found\.

$`)
	if !wantStatus.Match(out) {
		t.Fatalf("calicoctl node status:\n%s\nwant the shape of\n%s", out, wantStatus)
	}

	// Restart n2's agent: no route is withdrawn from either kernel, and the
	// pods keep talking.
	del1, del2 := n1.watchDeletes(t), n2.watchDeletes(t)
	n2.stop(t)
	if got := n1.remoteRoutes(t); len(got) != 1 || got[0] != want1 {
		t.Fatalf("n1 lost n2's block when n2's agent stopped: %q", got)
	}
	if msg := ping(t, pod1, ip2); msg != "" {
		t.Fatalf("pods cut off while n2's agent is down: %s", msg)
	}
	n2.start(t, bin)
	n2.waitEstablished(t, n1.addr)
	n1.waitEstablished(t, n2.addr)
	waitFor(t, "n2's restart settles", func() string {
		if got := n2.remoteRoutes(t); len(got) != 1 || got[0] != want2 {
			return fmt.Sprintf("n2: %q", got)
		}
		return ping(t, pod1, ip2)
	})
	// Give the restarted agent time to finish its initial sync and prune
	// pass, then look for deletions of remote routes.
	a2 := n2.agent(t)
	waitFor(t, "n2 ready", func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := a2.Status(ctx, &agentpb.StatusRequest{})
		if err != nil || !st.Ready {
			return fmt.Sprint(st, err)
		}
		return ""
	})
	for _, d := range []struct {
		name string
		got  []string
	}{{"n1", del1()}, {"n2", del2()}} {
		for _, p := range d.got {
			if p == block(ip1) || p == block(ip2) {
				t.Errorf("%s: route to %s was deleted during n2's restart (flushed instead of reconciled)", d.name, p)
			}
		}
	}
}
