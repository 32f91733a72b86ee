package interop

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tabbynet/tabby/tests/lab"
)

// nodeStatusJSON is the part of `calicoctl node status -o json` the tests
// read (Calico's CalicoNodeStatus shape, with Tabby's per-peer detail).
type nodeStatusJSON struct {
	Running bool `json:"running"`
	BGP     struct {
		State   string       `json:"state"`
		PeersV4 []statusPeer `json:"peersV4"`
	} `json:"bgp"`
}

type statusPeer struct {
	PeerIP           string `json:"peerIP"`
	Type             string `json:"type"`
	State            string `json:"state"`
	Info             string `json:"info"`
	LastError        string `json:"lastError"`
	RoutesReceived   uint64 `json:"routesReceived"`
	RoutesAccepted   uint64 `json:"routesAccepted"`
	RoutesAdvertised uint64 `json:"routesAdvertised"`
}

// statusJSON runs `calicoctl node status -o json` on n.
func statusJSON(t *testing.T, n *lab.Node) nodeStatusJSON {
	t.Helper()
	out, err := n.NodeStatus(testCtx(t, time.Minute), "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st nodeStatusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("node status -o json of %s is not JSON: %v\n%s", n.Name, err, out)
	}
	return st
}

// peerStatus finds one peer in a node status.
func (s nodeStatusJSON) peer(addr netip.Addr) (statusPeer, bool) {
	for _, p := range s.BGP.PeersV4 {
		if p.PeerIP == addr.String() {
			return p, true
		}
	}
	return statusPeer{}, false
}

// requireStatusText checks `calicoctl node status` of n: Calico's header
// and one row per expected peer, of the given type, Established.
func requireStatusText(t *testing.T, l *lab.Lab, n *lab.Node, peerType string) {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	out, err := n.NodeStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Calico process is running.") || !strings.Contains(out, "IPv4 BGP status") {
		t.Errorf("%s: node status lacks Calico's header:\n%s", n.Name, out)
	}
	for _, peer := range l.ExpectedPeers(n) {
		row := ""
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "| "+peer.String()+" ") {
				row = line
			}
		}
		if row == "" || !strings.Contains(row, peerType) || !strings.Contains(row, "Established") {
			t.Errorf("%s: node status has no Established %q row for %s:\n%s", n.Name, peerType, peer, out)
		}
	}
}

// TestMeshThreeNodes: the default topology. Every pod reaches every other
// pod, each kernel holds exactly the expected proto-98 routes (own blocks
// as blackholes, pods on their veths, the other nodes' blocks via them),
// and `calicoctl node status` shows the mesh.
func TestMeshThreeNodes(t *testing.T) {
	l := up(t, lab.Options{Topology: lab.TopologyMesh, Nodes: 3, PodsPerNode: 2})
	ctx := testCtx(t, 3*time.Minute)
	requireAllReach(t, ctx, l)
	requireRoutes(t, ctx, l)
	for _, n := range l.Nodes {
		requireStatusText(t, l, n, "node-to-node mesh")
	}
}

// TestRouteReflectors: mesh off; one node of three, or two of four (one
// cluster ID), reflect, and every node peers with them through one BGPPeer
// with a peerSelector; routes reach every kernel with the originating node
// as next hop (reflection keeps it).
func TestRouteReflectors(t *testing.T) {
	for _, c := range []struct{ nodes, rrs int }{{3, 1}, {4, 2}} {
		t.Run(fmt.Sprintf("%d-nodes-%d-rr", c.nodes, c.rrs), func(t *testing.T) {
			l := up(t, lab.Options{Topology: lab.TopologyRR, Nodes: c.nodes, RouteReflectors: c.rrs, PodsPerNode: 1})
			ctx := testCtx(t, 3*time.Minute)
			requireAllReach(t, ctx, l)
			requireRoutes(t, ctx, l)
			// A client has sessions only to the reflectors.
			client := l.Nodes[c.nodes-1]
			peers, err := client.PeerStates(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(peers) != c.rrs {
				t.Errorf("client %s has %d sessions, want %d (the reflectors): %v", client.Name, len(peers), c.rrs, peers)
			}
			for _, rr := range l.RouteReflectors() {
				rrPeers, err := rr.PeerStates(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if p := rrPeers[client.IP]; p == nil || p.GetType() != "route reflector client" {
					t.Errorf("reflector %s does not list %s as a route reflector client: %v", rr.Name, client.Name, rrPeers)
				}
			}
		})
	}
}

// TestToRTopology: each node peers eBGP with the FRR top-of-rack router
// (AS per rack, TCP-MD5), mesh off. Both racks have two nodes, so each
// node gets a rack mate's block straight from it (third-party next hop)
// whichever rack reached the ToR first. Pods in different racks reach
// each other through the ToR, the ToR's default route is in every node's
// kernel (proto 98, checked by requireRoutes), and a pod reaches an
// address only the ToR holds.
func TestToRTopology(t *testing.T) {
	l := up(t, lab.Options{Topology: lab.TopologyToR, Nodes: 4, Racks: 2, PodsPerNode: 1})
	ctx := testCtx(t, 3*time.Minute)
	requireAllReach(t, ctx, l)
	requireRoutes(t, ctx, l)
	st, err := l.ToR.FRR.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range l.Nodes {
		if p := st[n.IP]; p.State != "Established" || p.RemoteAS != lab.ToRRackAS(n.Rack) {
			t.Errorf("ToR's session with %s: %+v, want Established with AS %d", n.Name, p, lab.ToRRackAS(n.Rack))
		}
		// A BGPPeer with a nodeSelector is "node specific" in Calico.
		requireStatusText(t, l, n, "node specific")
	}
	if err := lab.Ping(ctx, l.Pods[0].NS, lab.ToRLoopback); err != nil {
		t.Errorf("a pod cannot reach the ToR's loopback: %v", err)
	}
	// The MD5 key is really in use: FRR shows it configured on the
	// neighbor.
	out, err := l.ToR.FRR.Vtysh(ctx, "show running-config")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "password "+lab.DefaultToRPassword) {
		t.Errorf("the ToR runs without the MD5 password:\n%s", out)
	}
}

// TestNodeStatusJSON: `calicoctl node status -o json` carries the
// structured peer table with route counts.
func TestNodeStatusJSON(t *testing.T) {
	l := up(t, lab.Options{Topology: lab.TopologyMesh, Nodes: 2, PodsPerNode: 1})
	st := statusJSON(t, l.Nodes[0])
	if !st.Running || st.BGP.State != "running" || len(st.BGP.PeersV4) != 1 {
		t.Fatalf("status: %+v", st)
	}
	p, ok := st.peer(l.Nodes[1].IP)
	if !ok || p.State != "Established" || p.Type != "node-to-node mesh" {
		t.Fatalf("peer node2 in node1's status: %+v", st.BGP.PeersV4)
	}
	// Each node has one block: one route each way.
	if p.RoutesReceived != 1 || p.RoutesAccepted != 1 || p.RoutesAdvertised != 1 {
		t.Errorf("node1 <-> node2 exchange one block each; counts: %+v", p)
	}
}
