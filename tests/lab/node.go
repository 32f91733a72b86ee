package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tabbynet/tabby/api/agentpb"
	"github.com/tabbynet/tabby/cni-plugin/agent"
)

// RouteProtocol is the rtm_protocol of every route Tabby writes ("proto
// 98"). It is repeated here, not imported from felix/dataplane, so that a
// change there is caught by the lab instead of followed by it.
const RouteProtocol = 98

// birdProtocol is BIRD's rtm_protocol ("proto bird").
const birdProtocol = unix.RTPROT_BIRD

// DefaultASNumber is Calico's default AS.
const DefaultASNumber = 64512

// staticDefaultMetric is the metric of the default route the lab gives each
// node: every node needs one (proxy ARP for 169.254.1.1 answers only for an
// address the node can route elsewhere), and its high metric leaves room
// for a default route learned over BGP from the ToR (metric 0) to win.
const staticDefaultMetric = 4096

// NodeSpec describes a node to add.
type NodeSpec struct {
	// Name is the Node resource's name (and NODENAME); "" picks node<i>.
	Name string
	Rack int
	// AS is calico-node's AS variable; 0 leaves it unset (BGPConfiguration
	// or 64512).
	AS uint32
	// Env adds to (and overrides) calico-node's environment.
	Env map[string]string
}

// Node is one calico-node in its own namespace, with eth0 on its rack.
type Node struct {
	Name   string
	Rack   int
	IP     netip.Addr
	AS     uint32 // 0: not set on the node
	NS     *NetNS
	Dir    string
	Socket string // CALICO_AGENT_SOCKET
	// Port is the fabric's end of the node's link (in the fabric namespace).
	Port string

	lab *Lab
	env []string

	mu   sync.Mutex
	proc *Proc
}

// AddNode makes the node's namespace and wiring; Start runs calico-node.
func (l *Lab) AddNode(ctx context.Context, spec NodeSpec) (*Node, error) {
	if err := l.Opts.checkBinaries(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	idx := len(l.Nodes) + 1
	host := 10 + l.perRack[spec.Rack]
	l.perRack[spec.Rack]++
	l.mu.Unlock()
	if host >= 100 {
		return nil, fmt.Errorf("rack %d is full (90 nodes)", spec.Rack)
	}
	if spec.Name == "" {
		spec.Name = fmt.Sprintf("node%d", idx)
	}
	n := &Node{
		Name: spec.Name,
		Rack: spec.Rack,
		IP:   rackAddr(spec.Rack, host),
		AS:   spec.AS,
		Dir:  filepath.Join(l.env.dir, spec.Name),
		lab:  l,
	}
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return nil, err
	}
	n.Socket = filepath.Join(n.Dir, "agent.sock")
	var err error
	if n.NS, err = l.env.newNetNS(spec.Name); err != nil {
		return nil, err
	}
	if n.Port, err = l.Fabric.Attach(n.NS, spec.Rack, "eth0", netip.PrefixFrom(n.IP, 24)); err != nil {
		return nil, fmt.Errorf("wire node %s: %w", n.Name, err)
	}
	if err := n.NS.Netlink(func(h *netlink.Handle) error {
		return h.RouteAdd(&netlink.Route{Dst: ipNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: ToRAddr(spec.Rack).AsSlice(), Priority: staticDefaultMetric})
	}); err != nil {
		return nil, fmt.Errorf("default route of node %s: %w", n.Name, err)
	}
	if err := n.NS.sysctl(ctx, "net.ipv4.ip_forward=1"); err != nil {
		return nil, err
	}
	env := map[string]string{
		"NODENAME":                   n.Name,
		"IP":                         netip.PrefixFrom(n.IP, 24).String(),
		"DATASTORE_TYPE":             "etcdv3",
		"ETCD_ENDPOINTS":             EndpointFor(spec.Rack),
		"WAIT_FOR_DATASTORE":         "true",
		"CALICO_NETWORKING_BACKEND":  "bird",
		"CALICO_IPV4POOL_CIDR":       l.Opts.PoolCIDR,
		"CALICO_IPV4POOL_IPIP":       "Never",
		"CALICO_IPV4POOL_VXLAN":      "Never",
		"CALICO_AGENT_SOCKET":        n.Socket,
		"TABBY_NODENAME_FILE":        filepath.Join(n.Dir, "nodename"),
		"CALICO_LOG_LEVEL":           l.Opts.AgentLogLevel,
		"FELIX_IPV6SUPPORT":          "false",
		"FELIX_ROUTEREFRESHINTERVAL": "90",
	}
	if spec.AS != 0 {
		env["AS"] = fmt.Sprint(spec.AS)
	}
	for k, v := range spec.Env {
		env[k] = v
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		n.env = append(n.env, k+"="+env[k])
	}
	l.mu.Lock()
	l.Nodes = append(l.Nodes, n)
	l.mu.Unlock()
	return n, nil
}

// Start runs calico-node and waits until its agent socket answers (not
// until it is ready: see WaitReady).
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	if n.proc != nil {
		if ok, _ := n.proc.Exited(); !ok {
			n.mu.Unlock()
			return fmt.Errorf("calico-node of %s is already running (pid %d)", n.Name, n.proc.PID())
		}
	}
	n.mu.Unlock()
	bin := filepath.Join(n.lab.Opts.BinDir, "calico-node")
	p, err := n.lab.env.startProc(n.NS, "calico-node "+n.Name, []string{bin}, n.env, filepath.Join(n.Dir, "calico-node.log"), 15*time.Second)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.proc = p
	n.mu.Unlock()
	return waitFor(ctx, 2*time.Minute, func() error {
		if ok, exitErr := p.Exited(); ok {
			return permanent(fmt.Errorf("calico-node of %s exited while starting (%v):\n%s", n.Name, exitErr, p.LogTail(30)))
		}
		_, err := n.Status(ctx)
		return err
	})
}

// Proc is the running calico-node (nil before Start).
func (n *Node) Proc() *Proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// Kill SIGKILLs calico-node (by PID) and waits until it is gone.
func (n *Node) Kill() error {
	if p := n.Proc(); p != nil {
		return p.Kill()
	}
	return nil
}

// Stop ends calico-node with SIGTERM (SIGKILL after 15 s).
func (n *Node) Stop() error {
	if p := n.Proc(); p != nil {
		return p.Stop(15 * time.Second)
	}
	return nil
}

// Status asks the agent for its status over its socket.
func (n *Node) Status(ctx context.Context) (*agentpb.StatusResponse, error) {
	c, err := agent.Dial(n.Socket)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := c.Status(ctx, &agentpb.StatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("status of calico-node %s: %w", n.Name, err)
	}
	return st, nil
}

// WaitReady waits until the agent reports ready.
func (n *Node) WaitReady(ctx context.Context, limit time.Duration) error {
	err := waitFor(ctx, limit, func() error {
		if p := n.Proc(); p != nil {
			if ok, exitErr := p.Exited(); ok {
				return permanent(fmt.Errorf("calico-node of %s exited (%v):\n%s", n.Name, exitErr, p.LogTail(30)))
			}
		}
		st, err := n.Status(ctx)
		if err != nil {
			return err
		}
		if !st.GetReady() {
			return fmt.Errorf("calico-node of %s is not ready", n.Name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("wait for calico-node %s to be ready: %w", n.Name, err)
	}
	return nil
}

// PeerStates are the agent's BGP peers: address → state.
func (n *Node) PeerStates(ctx context.Context) (map[netip.Addr]*agentpb.BGPPeerStatus, error) {
	st, err := n.Status(ctx)
	if err != nil {
		return nil, err
	}
	m := map[netip.Addr]*agentpb.BGPPeerStatus{}
	for _, p := range st.GetPeers() {
		a, err := netip.ParseAddr(p.GetAddress())
		if err != nil {
			return nil, fmt.Errorf("calico-node %s reports a peer with address %q", n.Name, p.GetAddress())
		}
		m[a] = p
	}
	return m, nil
}

// WaitEstablished waits until the agent reports a session with every one
// of peers in state Established.
func (n *Node) WaitEstablished(ctx context.Context, limit time.Duration, peers ...netip.Addr) error {
	err := waitFor(ctx, limit, func() error {
		m, err := n.PeerStates(ctx)
		if err != nil {
			return err
		}
		var down []string
		for _, a := range peers {
			p, ok := m[a]
			switch {
			case !ok:
				down = append(down, a.String()+" (not configured)")
			case p.GetState() != "Established":
				down = append(down, fmt.Sprintf("%s (%s %s)", a, p.GetState(), p.GetLastError()))
			}
		}
		if len(down) > 0 {
			return fmt.Errorf("%s: sessions not established: %s", n.Name, strings.Join(down, ", "))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("wait for BGP sessions of %s: %w", n.Name, err)
	}
	return nil
}

// NodeStatus is `calicoctl node status` run in the node's namespace
// against its agent socket, as an operator on that host would.
func (n *Node) NodeStatus(ctx context.Context, args ...string) (string, error) {
	argv := append([]string{filepath.Join(n.lab.Opts.BinDir, "calicoctl"), "node", "status"}, args...)
	full := append([]string{"netns", "exec", n.NS.Name, "env", "CALICO_AGENT_SOCKET=" + n.Socket}, argv...)
	out, err := runCmd(ctx, "ip", full...)
	if err != nil {
		return out, fmt.Errorf("calicoctl node status on %s: %w", n.Name, err)
	}
	return out, nil
}
