package cnilab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/tabbynet/tabby/api/agentpb"
	"github.com/tabbynet/tabby/cni-plugin/agent"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
	"github.com/tabbynet/tabby/internal/spawn"
	"github.com/tabbynet/tabby/internal/tcpfwd"
	"github.com/tabbynet/tabby/internal/testutil"
	"github.com/tabbynet/tabby/ipam"
)

// EtcdPort is where the fabric namespace forwards etcd for the nodes.
const EtcdPort = 2379

// Lab is one embedded etcd, a fabric namespace and any number of nodes.
type Lab struct {
	T     testing.TB
	Bin   string // calico, calico-ipam, calico-node, calicoctl
	Store datastore.Interface
	// EtcdEndpoints are the embedded etcd's client URLs on the test's
	// loopback, for tools run on the host (calicoctl's ETCD_ENDPOINTS).
	EtcdEndpoints []string
	IPAM          *ipam.IPAM
	Fabric        ns.NetNS
	Dir           string // per-lab temp dir: sockets, logs, libcni cache

	mu    sync.Mutex
	nodes int
}

// New starts etcd and the fabric. The datastore is reachable from every
// node namespace at its gateway address, through a TCP forwarder listening
// inside the fabric namespace (the embedded etcd itself listens only on the
// test's loopback).
func New(t testing.TB) *Lab {
	t.Helper()
	testutil.RequirePrivileged(t)
	if testing.Short() {
		t.Skip("end-to-end CNI lab: skipped in -short mode")
	}
	bin := Binaries(t)
	e := etcdtest.Start(t)
	store := etcdtest.Connect(t, e.Endpoints()...)
	l := &Lab{
		T:             t,
		Bin:           bin,
		Store:         store,
		EtcdEndpoints: e.Endpoints(),
		IPAM:          ipam.New(store, slog.New(slog.NewTextHandler(io.Discard, nil))),
		Fabric:        testutil.NewNetNS(t, "tabby-e2e-fab"),
		Dir:           t.TempDir(),
	}
	run(t, l.Fabric, "ip", "link", "set", "lo", "up")
	run(t, l.Fabric, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	l.forwardEtcd(strings.TrimPrefix(e.Endpoints()[0], "http://"))
	return l
}

// forwardEtcd listens on 0.0.0.0:EtcdPort inside the fabric namespace and
// pipes each connection to target on the test's loopback. The listening
// socket belongs to the namespace it was made in; the goroutines serving it
// may run on any thread.
func (l *Lab) forwardEtcd(target string) {
	var ln net.Listener
	err := l.Fabric.Do(func(ns.NetNS) error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", EtcdPort))
		return err
	})
	if err != nil {
		l.T.Fatalf("listen for etcd in the fabric namespace: %v", err)
	}
	fwd := tcpfwd.Serve(ln, target)
	l.T.Cleanup(func() { fwd.Close() })
}

// Node is one calico-node in its own network namespace.
type Node struct {
	Lab     *Lab
	Name    string
	Index   int
	NS      ns.NetNS
	IP      net.IP // the node's address on its link to the fabric
	IP6     net.IP // its IPv6 address on that link
	Gateway net.IP // the fabric's side, where etcd is forwarded
	Socket  string
	Env     []string // calico-node's environment, without PATH
	LogPath string   // calico-node's stdout and stderr
	Dir     string

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{}
}

// NodeOptions tune a node; zero values give the defaults noted.
type NodeOptions struct {
	Name string // default "node<i>"
	// PoolCIDR is CALICO_IPV4POOL_CIDR (default 10.244.0.0/16).
	PoolCIDR string
	// BlockSize is CALICO_IPV4POOL_BLOCK_SIZE (default: calico-node's, 26).
	BlockSize int
	// ExtraEnv is added to (and overrides) calico-node's environment.
	ExtraEnv map[string]string
	// NoStart builds the namespace but does not start calico-node.
	NoStart bool
}

// AddNode makes a node namespace wired to the fabric and starts calico-node
// in it, returning once the agent answers and is ready.
func (l *Lab) AddNode(o NodeOptions) *Node {
	t := l.T
	t.Helper()
	l.mu.Lock()
	l.nodes++
	i := l.nodes
	l.mu.Unlock()
	if o.Name == "" {
		o.Name = fmt.Sprintf("node%d", i)
	}
	if o.PoolCIDR == "" {
		o.PoolCIDR = "10.244.0.0/16"
	}
	n := &Node{
		Lab:     l,
		Name:    o.Name,
		Index:   i,
		NS:      testutil.NewNetNS(t, "tabby-e2e-"+o.Name),
		IP:      net.IPv4(192, 168, byte(80+i), 2).To4(),
		IP6:     net.ParseIP(fmt.Sprintf("fd00:192:168:%d::2", 80+i)),
		Gateway: net.IPv4(192, 168, byte(80+i), 1).To4(),
		Dir:     filepath.Join(l.Dir, o.Name),
	}
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n.Socket = filepath.Join(n.Dir, "agent.sock")
	n.LogPath = filepath.Join(n.Dir, "calico-node.log")
	n.wire(t)

	env := map[string]string{
		"NODENAME":                   n.Name,
		"IP":                         n.IP.String() + "/24",
		"DATASTORE_TYPE":             "etcdv3",
		"ETCD_ENDPOINTS":             fmt.Sprintf("http://%s:%d", n.Gateway, EtcdPort),
		"WAIT_FOR_DATASTORE":         "true",
		"CALICO_IPV4POOL_CIDR":       o.PoolCIDR,
		"CALICO_NETWORKING_BACKEND":  "none",
		"CALICO_AGENT_SOCKET":        n.Socket,
		"TABBY_NODENAME_FILE":        filepath.Join(n.Dir, "nodename"),
		"CALICO_LOG_LEVEL":           "info",
		"FELIX_ROUTEREFRESHINTERVAL": "3600",
	}
	if o.BlockSize > 0 {
		env["CALICO_IPV4POOL_BLOCK_SIZE"] = fmt.Sprint(o.BlockSize)
	}
	for k, v := range o.ExtraEnv {
		env[k] = v
	}
	for k, v := range env {
		n.Env = append(n.Env, k+"="+v)
	}
	t.Cleanup(func() { n.Stop(t) })
	if !o.NoStart {
		n.Start(t)
	}
	return n
}

// wire gives the node "eth0" with its address, a default route through the
// fabric (which also makes proxy ARP for 169.254.1.1 work: the node must be
// able to route the address elsewhere), and IP forwarding, as any
// Kubernetes node has.
func (n *Node) wire(t testing.TB) {
	t.Helper()
	fab := n.Lab.Fabric
	peer := fmt.Sprintf("n%d", n.Index)
	err := fab.Do(func(ns.NetNS) error {
		la := netlink.NewLinkAttrs()
		la.Name = peer
		v := &netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(n.NS.Fd()))}
		if err := netlink.LinkAdd(v); err != nil {
			return fmt.Errorf("veth to %s: %w", n.Name, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, fab, "ip", "addr", "add", n.Gateway.String()+"/24", "dev", peer)
	run(t, fab, "ip", "link", "set", peer, "up")
	run(t, n.NS, "ip", "link", "set", "lo", "up")
	run(t, n.NS, "ip", "addr", "add", n.IP.String()+"/24", "dev", "eth0")
	run(t, n.NS, "ip", "link", "set", "eth0", "up")
	run(t, n.NS, "ip", "route", "add", "default", "via", n.Gateway.String())
	run(t, n.NS, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	// IPv6 too, for dual-stack pods: an address, a default route (proxy
	// NDP, like proxy ARP, answers only for what the node can route), and
	// forwarding.
	gw6 := fmt.Sprintf("fd00:192:168:%d::1", 80+n.Index)
	run(t, fab, "ip", "addr", "add", gw6+"/64", "dev", peer, "nodad")
	run(t, n.NS, "ip", "addr", "add", n.IP6.String()+"/64", "dev", "eth0", "nodad")
	run(t, n.NS, "ip", "-6", "route", "add", "default", "via", gw6)
	run(t, n.NS, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
}

// Start runs calico-node in the node's namespace (`ip netns exec` execs it,
// so the PID is calico-node's) and waits until the agent is ready.
func (n *Node) Start(t testing.TB) {
	t.Helper()
	if err := n.StartNoWait(); err != nil {
		t.Fatal(err)
	}
	n.WaitReady(t, 90*time.Second)
}

// StartNoWait starts calico-node without waiting for readiness.
func (n *Node) StartNoWait() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		return fmt.Errorf("calico-node of %s is already running", n.Name)
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("ip", "netns", "exec", nsName(n.NS), filepath.Join(n.Lab.Bin, "calico-node"))
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, n.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a signal meant for the test never reaches it
	// and a kill reaches only it; SIGKILL when the test binary dies (a
	// -timeout panic), so no calico-node outlives it pinning the lab's
	// namespaces. `ip netns exec` execs calico-node, which keeps the
	// parent-death signal; spawn (spawn.go) forks from a thread that lives
	// as long as the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := spawn.Start(cmd); err != nil {
		logf.Close()
		return fmt.Errorf("start calico-node of %s: %w", n.Name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	n.proc, n.done = cmd, done
	return nil
}

// Exited waits up to d for calico-node to exit by itself and returns its
// exit error (nil for status 0); ok is false when it is still running.
func (n *Node) Exited(d time.Duration) (exitErr error, ok bool) {
	n.mu.Lock()
	cmd, done := n.proc, n.done
	n.mu.Unlock()
	if cmd == nil {
		return nil, true
	}
	select {
	case <-done:
		n.mu.Lock()
		n.proc = nil
		n.mu.Unlock()
		if cmd.ProcessState.Success() {
			return nil, true
		}
		return fmt.Errorf("%s", cmd.ProcessState), true
	case <-time.After(d):
		return nil, false
	}
}

// WaitReady polls the agent's Status until it says ready.
func (n *Node) WaitReady(t testing.TB, d time.Duration) {
	t.Helper()
	c, err := agent.Dial(n.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		if n.hasExited() {
			t.Fatalf("calico-node of %s exited while starting:\n%s", n.Name, n.LogTail(40))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := c.Status(ctx, &agentpb.StatusRequest{})
		cancel()
		if err == nil && st.GetReady() {
			return
		}
		if err != nil {
			last = err.Error()
		} else {
			last = "not ready"
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("calico-node of %s not ready after %s (%s):\n%s", n.Name, d, last, n.LogTail(40))
}

// hasExited reports whether a started calico-node has ended.
func (n *Node) hasExited() bool {
	n.mu.Lock()
	cmd, done := n.proc, n.done
	n.mu.Unlock()
	if cmd == nil {
		return false
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Running reports whether calico-node is running.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil
}

// Kill SIGKILLs calico-node (by PID) and waits for it to be gone.
func (n *Node) Kill(t testing.TB) {
	t.Helper()
	n.signal(t, syscall.SIGKILL, 10*time.Second)
}

// Stop ends calico-node: SIGTERM, then SIGKILL if it lingers.
func (n *Node) Stop(t testing.TB) {
	if !n.signal(t, syscall.SIGTERM, 10*time.Second) {
		n.signal(t, syscall.SIGKILL, 10*time.Second)
	}
}

func (n *Node) signal(t testing.TB, sig syscall.Signal, wait time.Duration) bool {
	n.mu.Lock()
	cmd, done := n.proc, n.done
	n.mu.Unlock()
	if cmd == nil {
		return true
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Logf("signal calico-node of %s (pid %d): %v", n.Name, cmd.Process.Pid, err)
	}
	select {
	case <-done:
		n.mu.Lock()
		n.proc = nil
		n.mu.Unlock()
		return true
	case <-time.After(wait):
		return false
	}
}

// LogTail returns the last lines of calico-node's log.
func (n *Node) LogTail(lines int) string {
	b, err := os.ReadFile(n.LogPath)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// Pather is a network namespace known by its path (ns.NetNS, *Pod).
type Pather interface{ Path() string }

func nsName(n Pather) string { return filepath.Base(n.Path()) }

// run runs a command inside a namespace and fails the test on error.
func run(t testing.TB, n Pather, args ...string) string {
	t.Helper()
	out, err := Exec(n, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// Exec runs a command inside a namespace.
func Exec(n Pather, args ...string) (string, error) {
	full := append([]string{"netns", "exec", nsName(n)}, args...)
	out, err := exec.Command("ip", full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	return string(out), nil
}
