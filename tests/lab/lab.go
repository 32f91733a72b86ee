package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Topology is how the nodes exchange routes.
type Topology string

const (
	// TopologyMesh is Calico's default: every node peers with every other.
	TopologyMesh Topology = "mesh"
	// TopologyRR turns the mesh off; one or two nodes are route reflectors
	// and every node peers with them.
	TopologyRR Topology = "rr"
	// TopologyToR turns the mesh off; each node peers eBGP with the FRR
	// top-of-rack router of its rack, with one AS per rack.
	TopologyToR Topology = "tor"
	// TopologyCustom turns the mesh off and configures nothing else: the
	// sessions come from Options.ExtraYAML (BGPPeers to a BIRD or FRR
	// route reflector, say) and are expected through ExpectPeer.
	TopologyCustom Topology = "custom"
)

// ParseTopology accepts "mesh", "rr", "tor" and "custom".
func ParseTopology(s string) (Topology, error) {
	switch t := Topology(strings.ToLower(s)); t {
	case TopologyMesh, TopologyRR, TopologyToR, TopologyCustom:
		return t, nil
	}
	return "", fmt.Errorf("topology %q is not known: use mesh, rr, tor or custom", s)
}

// Options configure a lab; zero values give the defaults noted.
type Options struct {
	Nodes       int      // default 3
	PodsPerNode int      // default 2; negative: none
	Topology    Topology // default mesh
	// RouteReflectors is how many nodes reflect in the rr topology (1 or
	// 2; default 1).
	RouteReflectors int
	// Racks is how many racks the nodes are spread over, round robin (tor
	// only; default 2, at most Nodes). Rack r has AS ToRRackAS(r).
	Racks int
	// ToRPassword is the TCP-MD5 key of every ToR session (tor); "" uses
	// DefaultToRPassword, "-" none.
	ToRPassword string
	// NoToRDefaultRoute stops the ToR from originating a default route.
	NoToRDefaultRoute bool
	// NoToR builds no FRR router (benchmarks).
	NoToR bool

	// BinDir holds calico-node, calicoctl, calico and calico-ipam (see
	// Binaries); required to run Tabby (AddNode, Apply, Deploy), not for a
	// lab of BIRD and FRR routers only.
	BinDir string
	// Dir is the work directory; "" makes (and removes) a temporary one.
	Dir string
	// PoolCIDR is CALICO_IPV4POOL_CIDR; default 10.244.0.0/16.
	PoolCIDR string
	// AgentLogLevel is calico-node's CALICO_LOG_LEVEL; default info.
	AgentLogLevel string
	// ExtraYAML is applied right after the topology's configuration (so it
	// may replace part of it), before any calico-node starts.
	ExtraYAML string
	// BeforeStart runs in Deploy once the nodes' namespaces exist and the
	// configuration is applied, before FRR and calico-node start: the
	// place to add BIRD or FRR peers, ExpectPeer and ExpectRoute.
	BeforeStart func(ctx context.Context, l *Lab) error
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

// Defaults.
const (
	DefaultNodes       = 3
	DefaultPodsPerNode = 2
	DefaultRacks       = 2
	DefaultPoolCIDR    = "10.244.0.0/16"
	// DefaultToRPassword is the MD5 key of the tor topology's sessions.
	DefaultToRPassword = "tabby-lab-md5"
	// ToRAS is the top-of-rack router's AS.
	ToRAS = 65000
	// RRClusterID is the route reflectors' cluster ID in the rr topology.
	RRClusterID = "244.0.0.1"
)

// ToRRackAS is the AS of the nodes of rack r in the tor topology.
func ToRRackAS(r int) uint32 { return 65001 + uint32(r) }

func (o *Options) setDefaults() error {
	if o.Nodes == 0 {
		o.Nodes = DefaultNodes
	}
	if o.PodsPerNode == 0 {
		o.PodsPerNode = DefaultPodsPerNode
	}
	if o.PodsPerNode < 0 {
		o.PodsPerNode = 0
	}
	if o.Topology == "" {
		o.Topology = TopologyMesh
	}
	if _, err := ParseTopology(string(o.Topology)); err != nil {
		return err
	}
	if o.Nodes < 1 || o.Nodes > 200 {
		return fmt.Errorf("%d nodes: use 1 to 200", o.Nodes)
	}
	if o.Topology == TopologyRR {
		if o.RouteReflectors == 0 {
			o.RouteReflectors = 1
		}
		if o.RouteReflectors < 1 || o.RouteReflectors > 2 || o.RouteReflectors > o.Nodes {
			return fmt.Errorf("%d route reflectors: use 1 or 2 (and no more than the nodes)", o.RouteReflectors)
		}
	}
	if o.Topology == TopologyToR {
		if o.NoToR {
			return errors.New("the tor topology needs the ToR router")
		}
		if o.Racks == 0 {
			o.Racks = min(DefaultRacks, o.Nodes)
		}
		if o.Racks < 1 || o.Racks > o.Nodes {
			return fmt.Errorf("%d racks for %d nodes: use 1 to %d", o.Racks, o.Nodes, o.Nodes)
		}
		if o.ToRPassword == "" {
			o.ToRPassword = DefaultToRPassword
		}
	} else {
		o.Racks = 1
	}
	if o.ToRPassword == "-" {
		o.ToRPassword = ""
	}
	// A lab of BIRD and FRR routers only needs no binaries; AddNode and
	// Apply check again.
	if o.BinDir != "" {
		if err := o.checkBinaries(); err != nil {
			return err
		}
	}
	if o.PoolCIDR == "" {
		o.PoolCIDR = DefaultPoolCIDR
	}
	if o.AgentLogLevel == "" {
		o.AgentLogLevel = "info"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

func (o *Options) checkBinaries() error {
	if o.BinDir == "" {
		return errors.New("no BinDir: build the binaries first (make build, or lab.Binaries)")
	}
	for _, b := range labBinaries {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return fmt.Errorf("%s is missing from %s: run make build: %w", b, o.BinDir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(ReferencePluginDir, "portmap")); err != nil {
		return fmt.Errorf("the portmap CNI plugin is missing from %s: install containernetworking-plugins (scripts/install-deps.sh)", ReferencePluginDir)
	}
	return nil
}

// Lab is one running topology. Close tears it down.
type Lab struct {
	Opts      Options
	Fabric    *Fabric
	Datastore *Datastore
	// ToR is the FRR top-of-rack router (nil with NoToR).
	ToR   *ToR
	Nodes []*Node
	Pods  []*Pod
	// Peers are BIRD and FRR routers added as peers that are not Tabby.
	Peers []*Peer

	env     *env
	log     *slog.Logger
	mu      sync.Mutex
	perRack map[int]int
	peerIdx int
	// extraPeers are sessions tests expect beyond the topology's;
	// extraRoutes are proto-98 routes they expect beyond the blocks and
	// pods; externalOwners are non-Tabby nodes (a BIRD mesh member) whose
	// blocks the Tabby nodes route to.
	extraPeers     map[*Node][]netip.Addr
	extraRoutes    map[*Node][]ExpectedRoute
	externalOwners map[string]externalOwner
}

type externalOwner struct {
	ip   netip.Addr
	rack int
}

// New builds the base of a lab: the fabric, etcd and (unless NoToR) the
// ToR's namespace with a leg in every rack. Nothing Tabby runs yet. On
// error everything made so far is removed.
func New(ctx context.Context, opts Options) (l *Lab, err error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	e, err := newEnv(opts.Dir, opts.Log)
	if err != nil {
		return nil, err
	}
	l = &Lab{Opts: opts, env: e, log: opts.Log, perRack: map[int]int{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
			l = nil
		}
	}()
	l.log.Info("building the lab", "prefix", e.prefix, "dir", e.dir)
	if l.Fabric, err = e.newFabric(ctx); err != nil {
		return l, err
	}
	for r := range opts.Racks {
		if err = l.Fabric.rack(r); err != nil {
			return l, err
		}
	}
	if l.Datastore, err = e.startDatastore(ctx, l.Fabric, l.log); err != nil {
		return l, err
	}
	if err = l.writeCalicoctlConfig(); err != nil {
		return l, err
	}
	if !opts.NoToR {
		racks := make([]int, opts.Racks)
		for r := range racks {
			racks[r] = r
		}
		if l.ToR, err = l.newToR(ctx, racks); err != nil {
			return l, err
		}
	}
	return l, nil
}

// Close tears the lab down: processes (SIGTERM, then SIGKILL), the etcd
// forwarder and server, every namespace, the work directory. It is safe to
// call more than once and after a partial build.
func (l *Lab) Close() error {
	if l == nil || l.env == nil {
		return nil
	}
	err := l.env.close()
	if err != nil {
		l.log.Error("teardown was not clean", "err", err)
	} else {
		l.log.Info("lab torn down", "prefix", l.env.prefix)
	}
	return err
}

// Prefix is the lab's namespace name prefix.
func (l *Lab) Prefix() string { return l.env.prefix }

// Dir is the lab's work directory (logs, sockets, configs).
func (l *Lab) Dir() string { return l.env.dir }

// NewNetNS makes a namespace owned by the lab, "<prefix>-<role>".
func (l *Lab) NewNetNS(role string) (*NetNS, error) { return l.env.newNetNS(role) }

// Node returns the node with that name, or nil.
func (l *Lab) Node(name string) *Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

func (l *Lab) calicoctlConfig() string { return filepath.Join(l.env.dir, "calicoctl.cfg") }

func (l *Lab) writeCalicoctlConfig() error {
	cfg := fmt.Sprintf("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\nspec:\n  datastoreType: etcdv3\n  etcdEndpoints: %s\n", l.Datastore.Loopback)
	return os.WriteFile(l.calicoctlConfig(), []byte(cfg), 0o644)
}

// Calicoctl runs calicoctl against the lab's etcd (from the lab's own
// namespace, over loopback) with stdin, returning its output.
func (l *Lab) Calicoctl(ctx context.Context, stdin string, args ...string) (string, error) {
	if err := l.Opts.checkBinaries(); err != nil {
		return "", err
	}
	argv := append([]string{"-c", l.calicoctlConfig()}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(l.Opts.BinDir, "calicoctl"), argv...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("calicoctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Apply is `calicoctl apply -f -` of YAML documents.
func (l *Lab) Apply(ctx context.Context, yaml string) error {
	_, err := l.Calicoctl(ctx, yaml, "apply", "-f", "-")
	return err
}

// runCmd runs a command and returns its combined output; the error quotes it.
func runCmd(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ToR is the top-of-rack router: a namespace with leg "r<r>" at ToRAddr(r)
// in each rack, forwarding between them, and FRR once started.
type ToR struct {
	NS    *NetNS
	Racks []int
	FRR   *FRR
	// Ports are the fabric's ends of its legs, by rack.
	Ports map[int]string
	lab   *Lab
}

func (l *Lab) newToR(ctx context.Context, racks []int) (*ToR, error) {
	n, err := l.env.newNetNS("tor")
	if err != nil {
		return nil, err
	}
	t := &ToR{NS: n, Racks: racks, Ports: map[int]string{}, lab: l}
	for _, r := range racks {
		port, err := l.Fabric.Attach(n, r, fmt.Sprintf("r%d", r), netip.PrefixFrom(ToRAddr(r), 24))
		if err != nil {
			return nil, fmt.Errorf("wire the ToR to rack %d: %w", r, err)
		}
		t.Ports[r] = port
	}
	if _, err := n.Exec(ctx, "ip", "addr", "add", ToRLoopback.String()+"/32", "dev", "lo"); err != nil {
		return nil, err
	}
	if err := n.sysctl(ctx, "net.ipv4.ip_forward=1"); err != nil {
		return nil, err
	}
	return t, nil
}

// Start runs FRR on the ToR with cfg (RouterID and AS default to the
// ToR's loopback and ToRAS).
func (t *ToR) Start(ctx context.Context, cfg FRRConfig) error {
	if t.FRR != nil {
		return errors.New("the ToR's FRR is already running")
	}
	if !cfg.RouterID.IsValid() {
		cfg.RouterID = ToRLoopback
	}
	if cfg.AS == 0 {
		cfg.AS = ToRAS
	}
	f, err := t.lab.env.startFRR(ctx, t.NS, "tor", cfg)
	if err != nil {
		return err
	}
	t.FRR = f
	return nil
}
