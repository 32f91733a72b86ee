package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// ReferencePluginDir is where Debian's containernetworking-plugins installs
// portmap (chained after calico, as in calico.yaml).
const ReferencePluginDir = "/usr/lib/cni"

// NetworkName is calico.yaml's network name (it prefixes IPAM handles).
const NetworkName = "k8s-pod-network"

const cniTimeout = 2 * time.Minute

// Pod is a sandbox (its own namespace) attached by CNI ADD on a node.
type Pod struct {
	Name        string // the Kubernetes pod name
	Namespace   string // the Kubernetes namespace
	Node        *Node
	NS          *NetNS
	ContainerID string
	IP          netip.Addr
}

// String is "node/pod".
func (p *Pod) String() string { return p.Node.Name + "/" + p.Name }

// ConfList is the node's conflist: calico (with calico-ipam) then portmap,
// as calico.yaml's 10-calico.conflist, pointed at this node's agent.
func (n *Node) ConfList() (*libcni.NetworkConfigList, error) {
	b, err := json.Marshal(map[string]any{
		"cniVersion": "1.0.0",
		"name":       NetworkName,
		"plugins": []map[string]any{
			{
				"type":           "calico",
				"log_level":      "info",
				"datastore_type": "etcdv3",
				"etcd_endpoints": EndpointFor(n.Rack),
				"nodename":       n.Name,
				"mtu":            0,
				"ipam":           map[string]any{"type": "calico-ipam"},
				"policy":         map[string]any{"type": "k8s"},
				"agent_socket":   n.Socket,
			},
			{"type": "portmap", "snat": true, "capabilities": map[string]any{"portMappings": true}},
		},
	})
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromBytes(b)
}

// cni is libcni as a container runtime holds it for this node: the built
// plugins then the reference ones, a result cache, plugin stderr to a log.
func (n *Node) cni() (*libcni.CNIConfig, func(), error) {
	f, err := os.OpenFile(filepath.Join(n.Dir, "cni-plugins.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	ex := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: &lockedWriter{w: f}}, PluginDecoder: version.PluginDecoder{}}
	c := libcni.NewCNIConfigWithCacheDir([]string{n.lab.Opts.BinDir, ReferencePluginDir}, filepath.Join(n.Dir, "cni-cache"), ex)
	return c, func() { f.Close() }, nil
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

func (p *Pod) runtimeConf() *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: p.ContainerID,
		NetNS:       p.NS.Path(),
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", p.Namespace},
			{"K8S_POD_NAME", p.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", p.ContainerID},
		},
	}
}

// AddPod makes a pod sandbox and runs CNI ADD for it from the node's
// namespace, as containerd does from the host's.
func (l *Lab) AddPod(ctx context.Context, n *Node, name string) (*Pod, error) {
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	p := &Pod{Name: name, Namespace: "default", Node: n, ContainerID: hex.EncodeToString(id)}
	var err error
	if p.NS, err = l.env.newNetNS("pod-" + n.Name + "-" + name); err != nil {
		return nil, err
	}
	list, err := n.ConfList()
	if err != nil {
		return nil, err
	}
	c, done, err := n.cni()
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, cniTimeout)
	defer cancel()
	var res *current.Result
	err = n.NS.Do(func() error {
		r, err := c.AddNetworkList(ctx, list, p.runtimeConf())
		if err != nil {
			return err
		}
		res, err = current.NewResultFromResult(r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("CNI ADD of pod %s on %s: %w\n%s", name, n.Name, err, tail(filepath.Join(n.Dir, "cni-plugins.log"), 10))
	}
	for _, ipc := range res.IPs {
		if a, ok := netip.AddrFromSlice(ipc.Address.IP); ok && a.Unmap().Is4() {
			p.IP = a.Unmap()
			break
		}
	}
	if !p.IP.IsValid() {
		return nil, fmt.Errorf("CNI ADD of pod %s on %s returned no IPv4 address: %v", name, n.Name, res)
	}
	l.mu.Lock()
	l.Pods = append(l.Pods, p)
	l.mu.Unlock()
	return p, nil
}
