package interop

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/ipam"
	"github.com/tabbynet/tabby/tests/lab"
)

// poolYAML creates the pool the nodes would create themselves, for tests
// that claim addresses before any calico-node runs.
const poolYAML = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: 10.244.0.0/16
  blockSize: 26
  ipipMode: Never
  vxlanMode: Never
  natOutgoing: true
  nodeSelector: all()
`

// protoName names a BIRD protocol after a peer, as Calico does.
func protoName(kind string, a netip.Addr) string {
	return kind + "_" + strings.ReplaceAll(a.String(), ".", "_")
}

// blocksOf are the confirmed blocks affine to node.
func blocksOf(ctx context.Context, t *testing.T, l *lab.Lab, node string) []netip.Prefix {
	t.Helper()
	res, err := l.Datastore.Store.List(ctx, "BlockAffinity", "")
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Prefix
	for _, r := range res.Items {
		a := r.(*v3.BlockAffinity)
		if a.Spec.Node == node && a.Spec.State == v3.AffinityStateConfirmed {
			out = append(out, netip.MustParsePrefix(a.Spec.CIDR))
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no block", node)
	}
	return out
}

// waitBIRD waits until BIRD's BGP protocols are all Established.
func waitBIRD(ctx context.Context, t *testing.T, b *lab.BIRD) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ps, err := b.Protocols(ctx)
		var down []string
		for _, p := range ps {
			if p.Proto == "BGP" && !p.Established() {
				down = append(down, fmt.Sprintf("%s (%s %s)", p.Name, p.State, p.Info))
			}
		}
		if err == nil && len(down) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("BIRD %s: sessions not established: %v %v", b.Name, down, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBIRDAsMeshMember: a BIRD router registered as a Node (with a block
// claimed through IPAM) joins the node-to-node mesh as a fourth node. The
// Tabby nodes peer with it, route its block to it, and BIRD routes theirs
// (in its own kernel, proto bird); pods and the host behind BIRD reach
// each other both ways.
func TestBIRDAsMeshMember(t *testing.T) {
	var bird *lab.Peer
	var stub *lab.NetNS
	var stubIP netip.Addr
	opts := lab.Options{Topology: lab.TopologyMesh, Nodes: 3, PodsPerNode: 1, ExtraYAML: poolYAML}
	opts.BeforeStart = func(ctx context.Context, l *lab.Lab) error {
		var err error
		if bird, err = l.AddPeer(ctx, "bird1", 0); err != nil {
			return err
		}
		node := fmt.Sprintf("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: bird1\nspec:\n  bgp:\n    ipv4Address: %s/24\n", bird.IP)
		if err := l.Apply(ctx, node); err != nil {
			return err
		}
		im := ipam.New(l.Datastore.Store, slog.New(slog.NewTextHandler(io.Discard, nil)))
		v4, _, err := im.AutoAssign(ctx, ipam.AssignArgs{Num4: 1, HandleID: "bird1-stub", Node: "bird1"})
		if err != nil {
			return fmt.Errorf("claim a block for bird1: %w", err)
		}
		stubIP = v4[0].Addr()
		if stub, err = bird.AddStub(ctx, stubIP); err != nil {
			return err
		}
		cfg := lab.BIRDConfig{Kernel: true, Static: []netip.Prefix{v4[0].Masked()}}
		for _, n := range l.Nodes {
			cfg.Peers = append(cfg.Peers, lab.BIRDPeer{Name: protoName("Mesh", n.IP), Local: bird.IP, LocalAS: lab.DefaultASNumber,
				Addr: n.IP, AS: lab.DefaultASNumber, Export: "static"})
			l.ExpectPeer(n, bird.IP)
		}
		l.RegisterExternalNode("bird1", bird.IP, 0)
		return bird.StartBIRD(ctx, cfg)
	}
	l := up(t, opts)
	ctx := testCtx(t, 3*time.Minute)
	waitBIRD(ctx, t, bird.BIRD)
	requireAllReach(t, ctx, l)
	requireRoutes(t, ctx, l)
	for _, p := range l.Pods {
		if err := lab.Ping(ctx, p.NS, stubIP); err != nil {
			t.Errorf("pod %s cannot reach the host behind BIRD: %v", p, err)
		}
		if err := lab.Ping(ctx, stub, p.IP); err != nil {
			t.Errorf("the host behind BIRD cannot reach pod %s: %v", p, err)
		}
	}
	// BIRD's kernel holds every Tabby block via its node.
	routes, err := bird.NS.Routes(unix.RTPROT_BIRD)
	if err != nil {
		t.Fatal(err)
	}
	got := map[netip.Prefix]string{}
	for _, r := range routes {
		got[r.Dst] = r.String()
	}
	for _, n := range l.Nodes {
		for _, b := range blocksOf(ctx, t, l, n.Name) {
			if s, ok := got[b]; !ok || !strings.Contains(s, "via "+n.IP.String()+" ") {
				t.Errorf("BIRD's kernel has no route %s via %s (%s): %v", b, n.IP, n.Name, routes)
			}
		}
	}
	for _, n := range l.Nodes {
		requireStatusText(t, l, n, "node-to-node mesh")
	}
}

// TestBIRDAsRouteReflector: mesh off; every node peers (one global
// BGPPeer) with a BIRD route reflector, which reflects their blocks with
// the next hop kept: routes go node to node, not through BIRD.
func TestBIRDAsRouteReflector(t *testing.T) {
	testExternalRR(t, func(ctx context.Context, l *lab.Lab, rr *lab.Peer) error {
		cfg := lab.BIRDConfig{}
		for _, n := range l.Nodes {
			cfg.Peers = append(cfg.Peers, lab.BIRDPeer{Name: protoName("Client", n.IP), Local: rr.IP, LocalAS: lab.DefaultASNumber,
				Addr: n.IP, AS: lab.DefaultASNumber, RRClient: true, RRClusterID: "1.1.1.1", Export: "all"})
		}
		return rr.StartBIRD(ctx, cfg)
	})
}

// TestFRRAsRouteReflector: the same with FRR as the route reflector.
func TestFRRAsRouteReflector(t *testing.T) {
	testExternalRR(t, func(ctx context.Context, l *lab.Lab, rr *lab.Peer) error {
		cfg := lab.FRRConfig{AS: lab.DefaultASNumber, RRClusterID: "1.1.1.1"}
		for _, n := range l.Nodes {
			cfg.Neighbors = append(cfg.Neighbors, lab.FRRNeighbor{Addr: n.IP, AS: lab.DefaultASNumber, RRClient: true})
		}
		return rr.StartFRR(ctx, cfg)
	})
}

func testExternalRR(t *testing.T, start func(ctx context.Context, l *lab.Lab, rr *lab.Peer) error) {
	var rr *lab.Peer
	opts := lab.Options{Topology: lab.TopologyCustom, Nodes: 3, PodsPerNode: 1}
	// The reflector's address is the first peer address of rack 0.
	opts.ExtraYAML = "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: external-rr\nspec:\n  peerIP: 10.99.0.100\n  asNumber: 64512\n"
	opts.BeforeStart = func(ctx context.Context, l *lab.Lab) error {
		var err error
		if rr, err = l.AddPeer(ctx, "rr", 0); err != nil {
			return err
		}
		if rr.IP != netip.MustParseAddr("10.99.0.100") {
			return fmt.Errorf("the reflector got %s, not the address the BGPPeer names", rr.IP)
		}
		for _, n := range l.Nodes {
			l.ExpectPeer(n, rr.IP)
		}
		return start(ctx, l, rr)
	}
	l := up(t, opts)
	ctx := testCtx(t, 3*time.Minute)
	requireAllReach(t, ctx, l)
	requireRoutes(t, ctx, l)
	for _, n := range l.Nodes {
		requireStatusText(t, l, n, "global")
	}
}
