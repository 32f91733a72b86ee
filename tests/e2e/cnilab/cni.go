package cnilab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/internal/testutil"
)

// NetworkName is calico.yaml's network name.
const NetworkName = "k8s-pod-network"

// CNIVersion is calico.yaml's conflist version. Debian's reference plugins
// (v1.1.1) speak CNI up to 1.0.0, so the chain with portmap uses it.
const CNIVersion = "1.0.0"

// CNIVersionLatest is the version with STATUS and GC, used by ConfListLatest.
const CNIVersionLatest = "1.1.0"

// CalicoConf is the calico plugin's entry of calico.yaml's conflist, for
// this node; overrides replace or add keys (a nil value deletes one).
func (n *Node) CalicoConf(overrides map[string]any) map[string]any {
	c := map[string]any{
		"type":           "calico",
		"log_level":      "info",
		"datastore_type": "etcdv3",
		"etcd_endpoints": fmt.Sprintf("http://%s:%d", n.Gateway, EtcdPort),
		"nodename":       n.Name,
		"mtu":            0,
		"ipam":           map[string]any{"type": "calico-ipam"},
		"policy":         map[string]any{"type": "k8s"},
		"kubernetes":     map[string]any{"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"},
		"agent_socket":   n.Socket,
	}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// ConfList is a conflist of the given plugin entries followed by portmap,
// as calico.yaml's 10-calico.conflist (CNI 1.0.0).
func ConfList(t testing.TB, plugins ...map[string]any) *libcni.NetworkConfigList {
	t.Helper()
	all := append(append([]map[string]any{}, plugins...),
		map[string]any{"type": "portmap", "snat": true, "capabilities": map[string]any{"portMappings": true}})
	return confList(t, CNIVersion, all)
}

// ConfListLatest is a CNI 1.1.0 conflist of the plugins alone (no portmap,
// which does not speak 1.1.0), for STATUS and GC through libcni.
func ConfListLatest(t testing.TB, plugins ...map[string]any) *libcni.NetworkConfigList {
	t.Helper()
	return confList(t, CNIVersionLatest, plugins)
}

func confList(t testing.TB, version string, plugins []map[string]any) *libcni.NetworkConfigList {
	t.Helper()
	b, err := json.Marshal(map[string]any{"cniVersion": version, "name": NetworkName, "plugins": plugins})
	if err != nil {
		t.Fatal(err)
	}
	l, err := libcni.ConfListFromBytes(b)
	if err != nil {
		t.Fatalf("conflist %s: %v", b, err)
	}
	return l
}

// Runtime is libcni as a container runtime holds it: the plugin path (the
// built binaries, then the reference plugins), a result cache, and the
// plugins' stderr collected in a file.
type Runtime struct {
	Node    *Node
	CNI     *libcni.CNIConfig
	LogPath string
}

// Runtime returns a libcni runtime for this node.
func (n *Node) Runtime(t testing.TB) *Runtime {
	t.Helper()
	return n.RuntimeWithPath(t, n.Lab.Bin, ReferencePluginDir)
}

// RuntimeWithPath is Runtime with the given plugin directories (CNI_PATH).
func (n *Node) RuntimeWithPath(t testing.TB, dirs ...string) *Runtime {
	t.Helper()
	logPath := filepath.Join(n.Dir, "plugins.log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	exec := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: &lockedWriter{w: f}}, PluginDecoder: version.PluginDecoder{}}
	return &Runtime{
		Node:    n,
		CNI:     libcni.NewCNIConfigWithCacheDir(dirs, filepath.Join(n.Dir, "cni-cache"), exec),
		LogPath: logPath,
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Pod is a sandbox: a netns and the identity kubelet would pass.
type Pod struct {
	Namespace, Name, ContainerID string
	IfName                       string
	NSPath                       string // the sandbox's netns
	// CNIArgs overrides the K8S_* CNI_ARGS (nil: kubelet's set).
	CNIArgs [][2]string
	// PortMappings are passed as the portMappings capability.
	PortMappings []map[string]any
}

// NewPod makes a pod sandbox (its netns) named name in namespace "default".
func NewPod(t testing.TB, name string) *Pod {
	t.Helper()
	return &Pod{Namespace: "default", Name: name, ContainerID: RandomID(t), IfName: "eth0",
		NSPath: testutil.NewNetNS(t, "tabby-e2e-pod").Path()}
}

// Path is the pod's netns path.
func (p *Pod) Path() string { return p.NSPath }

// NewPodRemovableNS is NewPod with a netns the test may delete itself (with
// DeleteNetNS) before the pod's DEL, as a runtime does when a sandbox dies.
func NewPodRemovableNS(t testing.TB, name string) *Pod {
	t.Helper()
	nsName := "tabby-e2e-gone-" + RandomID(t)[:8]
	if out, err := exec.Command("ip", "netns", "add", nsName).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", nsName, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", nsName).Run() })
	return &Pod{Namespace: "default", Name: name, ContainerID: RandomID(t), IfName: "eth0",
		NSPath: filepath.Join(testutil.NetNSDir, nsName)}
}

// DeleteNetNS removes the pod's netns (and so its end of the veth).
func (p *Pod) DeleteNetNS(t testing.TB) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "del", filepath.Base(p.NSPath)).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del: %v\n%s", err, out)
	}
}

// RandomID is a container ID as runtimes make them: 64 hex characters.
func RandomID(t testing.TB) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// RuntimeConf is what containerd passes for this pod.
func (p *Pod) RuntimeConf() *libcni.RuntimeConf {
	args := p.CNIArgs
	if args == nil {
		args = [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", p.Namespace},
			{"K8S_POD_NAME", p.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", p.ContainerID},
			{"K8S_POD_UID", "00000000-0000-0000-0000-" + p.ContainerID[:12]},
		}
	}
	rt := &libcni.RuntimeConf{ContainerID: p.ContainerID, NetNS: p.NSPath, IfName: p.IfName, Args: args}
	if p.PortMappings != nil {
		rt.CapabilityArgs = map[string]any{"portMappings": p.PortMappings}
	}
	return rt
}

// inNode runs f with the calling thread in the node's netns, so the plugins
// libcni forks inherit it, as they inherit the host netns from containerd.
func (r *Runtime) inNode(f func() error) error {
	return r.Node.NS.Do(func(ns.NetNS) error { return f() })
}

// CallTimeout bounds one libcni call.
const CallTimeout = 2 * time.Minute

// Add is CNI ADD of the conflist; it returns the final (portmap's) result.
func (r *Runtime) Add(list *libcni.NetworkConfigList, p *Pod) (*current.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	var res types.Result
	err := r.inNode(func() (err error) {
		res, err = r.CNI.AddNetworkList(ctx, list, p.RuntimeConf())
		return err
	})
	if err != nil {
		return nil, err
	}
	return current.NewResultFromResult(res)
}

// Del is CNI DEL (libcni passes the cached result as prevResult).
func (r *Runtime) Del(list *libcni.NetworkConfigList, p *Pod) error {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	return r.inNode(func() error { return r.CNI.DelNetworkList(ctx, list, p.RuntimeConf()) })
}

// Check is CNI CHECK against the cached result.
func (r *Runtime) Check(list *libcni.NetworkConfigList, p *Pod) error {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	return r.inNode(func() error { return r.CNI.CheckNetworkList(ctx, list, p.RuntimeConf()) })
}

// Status is CNI STATUS.
func (r *Runtime) Status(list *libcni.NetworkConfigList) error {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	return r.inNode(func() error { return r.CNI.GetStatusNetworkList(ctx, list) })
}

// GC is CNI GC with the given valid attachments.
func (r *Runtime) GC(list *libcni.NetworkConfigList, valid ...*Pod) error {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	args := &libcni.GCArgs{}
	for _, p := range valid {
		args.ValidAttachments = append(args.ValidAttachments, types.GCAttachment{ContainerID: p.ContainerID, IfName: p.IfName})
	}
	return r.inNode(func() error { return r.CNI.GCNetworkList(ctx, list, args) })
}

// ExecPlugin runs one plugin binary directly with stdin, as a runtime would,
// from the node's netns, returning its stdout (the result or error JSON).
func (r *Runtime) ExecPlugin(plugin, command string, stdin []byte, p *Pod) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	args := &invoke.Args{Command: command, Path: r.Node.Lab.Bin + ":" + ReferencePluginDir}
	if p != nil {
		rt := p.RuntimeConf()
		args.ContainerID, args.NetNS, args.IfName, args.PluginArgs = rt.ContainerID, rt.NetNS, rt.IfName, rt.Args
	}
	var out []byte
	err := r.inNode(func() (err error) {
		out, err = (&invoke.RawExec{Stderr: io.Discard}).ExecPlugin(ctx, filepath.Join(r.Node.Lab.Bin, plugin), stdin, args.AsEnv())
		return err
	})
	return out, err
}

// Links are the node's interfaces whose name starts with prefix.
func (n *Node) Links(t testing.TB, prefix string) map[string]netlink.Link {
	t.Helper()
	h, err := netlink.NewHandleAt(netns.NsHandle(n.NS.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		t.Fatalf("list links of %s: %v", n.Name, err)
	}
	out := map[string]netlink.Link{}
	for _, l := range links {
		if name := l.Attrs().Name; len(name) >= len(prefix) && name[:len(prefix)] == prefix {
			out[name] = l
		}
	}
	return out
}

// RoutesTo lists the node's main-table routes to exactly ip/32 (or /128).
func (n *Node) RoutesTo(t testing.TB, ip net.IP) []netlink.Route {
	t.Helper()
	h, err := netlink.NewHandleAt(netns.NsHandle(n.NS.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fam, bits := netlink.FAMILY_V4, 32
	if ip.To4() == nil {
		fam, bits = netlink.FAMILY_V6, 128
	}
	dst := &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}
	routes, err := h.RouteListFiltered(fam, &netlink.Route{Dst: dst, Table: 254}, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatalf("list routes of %s: %v", n.Name, err)
	}
	return routes
}

// WorkloadEndpoints lists the stored endpoints of a container.
func (l *Lab) WorkloadEndpoints(t testing.TB, containerID string) []*v3.WorkloadEndpoint {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := l.Store.List(ctx, "WorkloadEndpoint", "")
	if err != nil {
		t.Fatalf("list WorkloadEndpoints: %v", err)
	}
	var out []*v3.WorkloadEndpoint
	for _, r := range res.Items {
		if w := r.(*v3.WorkloadEndpoint); containerID == "" || w.Spec.ContainerID == containerID {
			out = append(out, w)
		}
	}
	return out
}

// HandleIPs lists the addresses allocated to a handle.
func (l *Lab) HandleIPs(t testing.TB, handle string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ips, err := l.IPAM.IPsByHandle(ctx, handle)
	if err != nil {
		t.Fatalf("IPAM addresses of handle %s: %v", handle, err)
	}
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

// Ping pings dst once from inside netns n (up to tries times).
func Ping(n Pather, dst net.IP, tries int) error {
	var err error
	for range tries {
		if _, err = Exec(n, "ping", "-c", "1", "-W", "1", dst.String()); err == nil {
			return nil
		}
	}
	return err
}
