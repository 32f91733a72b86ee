package interop

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tabbynet/tabby/tests/lab"
)

// TestBadPeers gives node1 every kind of bad peer at once, next to a
// healthy two-node mesh:
//
//   - a BIRD whose AS is not the one its BGPPeer names,
//   - a BIRD with another MD5 password than its BGPPeer,
//   - a BGPPeer at an address where nobody answers,
//   - "rogue", a BIRD registered as a Node (so a cluster-internal mesh
//     peer) that announces node1's own block, a more specific prefix inside
//     it and a prefix outside every pool,
//   - "ext", an external eBGP peer that announces node1's own block and a
//     prefix outside the pools.
//
// The broken sessions report their state and error in `calicoctl node
// status`; nothing is hijacked: node1's block stays a local blackhole
// everywhere it matters, the rogue's prefixes are all rejected (received,
// not accepted), the external peer's outside prefix is accepted (as a ToR's
// routes are) but not its copy of node1's block, and pods still reach each
// other.
func TestBadPeers(t *testing.T) {
	var rogue, ext *lab.Peer
	opts := lab.Options{Topology: lab.TopologyMesh, Nodes: 2, PodsPerNode: 1}
	opts.BeforeStart = func(ctx context.Context, l *lab.Lab) error {
		var err error
		node1, node2 := l.Nodes[0], l.Nodes[1]
		if rogue, err = l.AddPeer(ctx, "rogue", 0); err != nil {
			return err
		}
		if ext, err = l.AddPeer(ctx, "ext", 0); err != nil {
			return err
		}
		yaml := fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: rogue
spec:
  bgp:
    ipv4Address: %s/24
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: ext
spec:
  node: %s
  peerIP: %s
  asNumber: 65040
`, rogue.IP, node1.Name, ext.IP)
		if err := l.Apply(ctx, yaml); err != nil {
			return err
		}
		// Both start with nothing to announce; the bad prefixes come once
		// node1 has a block (after its first pod).
		if err := rogue.StartBIRD(ctx, rogueConfig(rogue, node1, node2, nil)); err != nil {
			return err
		}
		if err := ext.StartBIRD(ctx, extConfig(ext, node1, nil)); err != nil {
			return err
		}
		for _, n := range l.Nodes {
			l.ExpectPeer(n, rogue.IP)
		}
		l.ExpectPeer(node1, ext.IP)
		return nil
	}
	l := up(t, opts)
	ctx := testCtx(t, 4*time.Minute)
	node1, node2 := l.Nodes[0], l.Nodes[1]
	own := blocksOf(ctx, t, l, node1.Name)[0]
	inside := netip.PrefixFrom(own.Addr(), own.Bits()+1) // half of node1's block
	outside := netip.MustParsePrefix("192.0.2.0/24")
	extOutside := netip.MustParsePrefix("198.51.100.0/24")

	if err := rogue.BIRD.Reconfigure(ctx, rogueConfig(rogue, node1, node2, []netip.Prefix{own, inside, outside})); err != nil {
		t.Fatal(err)
	}
	if err := ext.BIRD.Reconfigure(ctx, extConfig(ext, node1, []netip.Prefix{own, extOutside})); err != nil {
		t.Fatal(err)
	}

	// The broken peers.
	wrongAS, err := l.AddPeer(ctx, "wrongas", 0)
	if err != nil {
		t.Fatal(err)
	}
	wrongPW, err := l.AddPeer(ctx, "wrongpw", 0)
	if err != nil {
		t.Fatal(err)
	}
	unreachable := netip.MustParseAddr("10.99.0.250")
	err = wrongAS.StartBIRD(ctx, lab.BIRDConfig{Peers: []lab.BIRDPeer{{Name: "node1", Local: wrongAS.IP, LocalAS: 65010,
		Addr: node1.IP, AS: lab.DefaultASNumber, Export: "none"}}})
	if err != nil {
		t.Fatal(err)
	}
	err = wrongPW.StartBIRD(ctx, lab.BIRDConfig{Peers: []lab.BIRDPeer{{Name: "node1", Local: wrongPW.IP, LocalAS: 65020,
		Addr: node1.IP, AS: lab.DefaultASNumber, Password: "the-right-password", Export: "none"}}})
	if err != nil {
		t.Fatal(err)
	}
	bad := fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: wrong-as
spec:
  node: node1
  peerIP: %s
  asNumber: 65011
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: wrong-password
spec:
  node: node1
  peerIP: %s
  asNumber: 65020
  password:
    value: not-the-password
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: unreachable
spec:
  node: node1
  peerIP: %s
  asNumber: 65030
`, wrongAS.IP, wrongPW.IP, unreachable)
	if err := l.Apply(ctx, bad); err != nil {
		t.Fatal(err)
	}

	// Wait until node1 has heard everything the rogue and ext send, and
	// the wrong AS has been refused at least once.
	err = waitUntil(ctx, 2*time.Minute, func() error {
		st := statusJSON(t, node1)
		r, _ := st.peer(rogue.IP)
		e, _ := st.peer(ext.IP)
		w, _ := st.peer(wrongAS.IP)
		switch {
		case r.RoutesReceived < 3:
			return fmt.Errorf("rogue: %+v", r)
		case e.RoutesReceived < 2:
			return fmt.Errorf("ext: %+v", e)
		case w.LastError == "" && w.Info == w.State:
			return fmt.Errorf("wrong AS: no error reported yet: %+v", w)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The external peer's outside prefix is the only new route.
	l.ExpectRoute(node1, lab.ExpectedRoute{Dst: extOutside, Via: []netip.Addr{ext.IP}, Why: "outside prefix from the external peer"})
	if err := l.WaitRoutes(ctx, time.Minute); err != nil {
		t.Error(err)
	}
	requireRoutes(t, ctx, l)

	// The counters come from the speaker's own bookkeeping and may trail
	// the kernel by a moment: wait for them to say what the kernel says.
	err = waitUntil(ctx, 30*time.Second, func() error {
		st := statusJSON(t, node1)
		if r, _ := st.peer(rogue.IP); r.RoutesReceived != 3 || r.RoutesAccepted != 0 {
			return fmt.Errorf("rogue mesh peer (own block, a half of it, a prefix outside the pools): want 3 received, 0 accepted: %+v", r)
		}
		if e, _ := st.peer(ext.IP); e.RoutesReceived != 2 || e.RoutesAccepted != 1 {
			return fmt.Errorf("external peer (own block, a prefix outside the pools): want 2 received, 1 accepted: %+v", e)
		}
		return nil
	})
	if err != nil {
		t.Errorf("node1's counts of received and accepted routes: %v", err)
	}
	// Each broken session says why, as BIRD would, once its first attempt
	// has failed (a timeout takes GoBGP's first connect delay plus its
	// dial timeout): in INFO after the state, and in lastError.
	brokenPeers := []struct {
		what string
		addr netip.Addr
		ok   func(lastError string) bool
	}{
		// Refused by node1 ("Bad peer AS"), or by node1 after BIRD
		// answered its connection ("Notification sent: ... (bad peer as)").
		{"wrong AS", wrongAS.IP, func(e string) bool { return strings.Contains(strings.ToLower(e), "bad peer as") }},
		// The kernel drops segments signed with another key: the connect
		// times out.
		{"wrong password", wrongPW.IP, func(e string) bool { return e == "Socket: Connection timed out" }},
		// Nobody answers ARP on the rack.
		{"unreachable", unreachable, func(e string) bool {
			return e == "Socket: No route to host" || e == "Socket: Connection timed out"
		}},
	}
	err = waitUntil(ctx, time.Minute, func() error {
		st := statusJSON(t, node1)
		var bad []string
		for _, c := range brokenPeers {
			p, ok := st.peer(c.addr)
			switch {
			case !ok:
				bad = append(bad, fmt.Sprintf("%s peer %s is missing from node status", c.what, c.addr))
			case p.State == "Established":
				bad = append(bad, fmt.Sprintf("%s peer %s is Established", c.what, c.addr))
			case !c.ok(p.LastError) || p.Info != p.State+" "+p.LastError:
				bad = append(bad, fmt.Sprintf("%s peer %s: state %s, info %q, last error %q", c.what, c.addr, p.State, p.Info, p.LastError))
			}
		}
		if len(bad) > 0 {
			return errors.New(strings.Join(bad, "; "))
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	text, err := node1.NodeStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node1:\n%s", text)
	for _, c := range brokenPeers {
		info := ""
		for _, line := range strings.Split(text, "\n") {
			if cells := strings.Split(line, "|"); len(cells) == 7 && strings.TrimSpace(cells[1]) == c.addr.String() {
				info = strings.TrimSpace(cells[5])
			}
		}
		state, lastErr, _ := strings.Cut(info, " ")
		if state == "Established" || !c.ok(lastErr) {
			t.Errorf("node status INFO of the %s peer %s: %q", c.what, c.addr, info)
		}
	}
	requireAllReach(t, ctx, l)
}

// rogueConfig: the rogue mesh member announces prefixes to node1 only
// (node2 gets a clean session, so nothing depends on best-path ties).
func rogueConfig(rogue *lab.Peer, node1, node2 *lab.Node, announce []netip.Prefix) lab.BIRDConfig {
	cfg := lab.BIRDConfig{
		MoreStatics: []lab.BIRDStatic{{Name: "to_node1", Prefixes: announce}},
		Peers: []lab.BIRDPeer{
			{Name: protoName("Mesh", node1.IP), Local: rogue.IP, LocalAS: lab.DefaultASNumber, Addr: node1.IP, AS: lab.DefaultASNumber, ExportProtocol: "to_node1"},
			{Name: protoName("Mesh", node2.IP), Local: rogue.IP, LocalAS: lab.DefaultASNumber, Addr: node2.IP, AS: lab.DefaultASNumber, Export: "none"},
		},
	}
	if len(announce) == 0 {
		cfg.MoreStatics = nil
		cfg.Peers[0].ExportProtocol, cfg.Peers[0].Export = "", "none"
	}
	return cfg
}

func extConfig(ext *lab.Peer, node1 *lab.Node, announce []netip.Prefix) lab.BIRDConfig {
	cfg := lab.BIRDConfig{Static: announce, Peers: []lab.BIRDPeer{
		{Name: protoName("Node", node1.IP), Local: ext.IP, LocalAS: 65040, Addr: node1.IP, AS: lab.DefaultASNumber, Export: "static"},
	}}
	return cfg
}
