package gobgp

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/bgp"
)

const settle = 30 * time.Second

// Three nodes in the default full mesh exchange their blocks; the next hop
// is the owning node; the status table says who is who.
func TestMeshExchangesBlocks(t *testing.T) {
	l := newLab(t)
	for i := 1; i <= 3; i++ {
		l.addNode(i, nil)
	}
	var ms []*member
	for i := 1; i <= 3; i++ {
		m := l.start(i)
		l.configure(m)
		ms = append(ms, m)
	}
	eventually(t, settle, "mesh established", allEstablished(t, ms...))
	for _, m := range ms {
		var want []string
		for _, o := range ms {
			if o != m {
				want = append(want, via(block(o.i), o.addr))
			}
		}
		eventually(t, settle, m.name+" learns the other blocks", wantLearned(m, want...))
		select {
		case <-m.sp.Synced():
		case <-time.After(settle):
			t.Fatalf("%s never reported its initial sync", m.name)
		}
	}

	// Status: every peer is a mesh peer, with one route each way, and the
	// passive side is the one with the greater address.
	eventually(t, settle, "route counts", func() string {
		for _, m := range ms {
			for _, p := range statusOf(t, m) {
				if p.Type != bgp.PeerTypeMesh || p.RoutesReceived != 1 || p.RoutesAccepted != 1 || p.RoutesAdvertised != 1 {
					return fmt.Sprintf("%s: %+v", m.name, p)
				}
				if p.Passive != (p.Address.String() > m.addr.String()) {
					return fmt.Sprintf("%s: passive %v towards %s", m.name, p.Passive, p.Address)
				}
				if p.Since.IsZero() || p.LastError != "" {
					return fmt.Sprintf("%s: %+v", m.name, p)
				}
			}
		}
		return ""
	})

	// The consumer's view: the first take is everything, then only deltas.
	n1 := ms[0]
	changed, withdrawn := n1.sp.TakeRouteChanges()
	if len(changed) != 2 || len(withdrawn) != 0 {
		t.Fatalf("first take = %v, %v; want the 2 learned routes", changed, withdrawn)
	}
	if c, w := n1.sp.TakeRouteChanges(); len(c)+len(w) != 0 {
		t.Fatalf("second take without changes = %v, %v", c, w)
	}

	// n3 withdraws its block and advertises another: n1 sees exactly that.
	n3 := ms[2]
	newBlock := netip.MustParsePrefix("10.65.30.64/26")
	n3.sp.SetAdvertisements([]bgp.Advertisement{{Prefix: newBlock, NextHop: n3.addr}})
	eventually(t, settle, "n1 follows n3's blocks", wantLearned(n1, via(block(2), ms[1].addr), via(newBlock, n3.addr)))
	eventually(t, settle, "deltas", func() string {
		c, w := n1.sp.TakeRouteChanges()
		if len(c) == 1 && c[0].Prefix == newBlock && c[0].NextHop == n3.addr && c[0].Peer == n3.addr && len(w) == 1 && w[0] == block(3) {
			return ""
		}
		// Events may arrive in two batches; put nothing back, just retry
		// the whole scenario check on the map.
		return fmt.Sprintf("changes %v withdrawn %v", c, w)
	})
}

// Re-applying the same desired state must not touch the sessions.
func TestSetPeersIsIdempotent(t *testing.T) {
	l := newLab(t)
	l.addNode(1, nil)
	l.addNode(2, nil)
	n1, n2 := l.start(1), l.start(2)
	l.configure(n1)
	l.configure(n2)
	eventually(t, settle, "established", allEstablished(t, n1, n2))
	before := statusOf(t, n1)[0].Since

	// Same peers again, and the same peers with only their type/source
	// changed (not part of the session).
	l.configure(n1)
	l.configure(n2)
	settled(t, n1)
	st := statusOf(t, n1)[0]
	if !st.Established() || !st.Since.Equal(before) {
		t.Fatalf("session touched by an identical SetPeers: %+v (was up since %s)", st, before)
	}
	if err := n1.sp.LastError(); err != nil {
		t.Fatalf("apply error: %v", err)
	}
}

// A route reflector topology with the mesh off: clients learn each other's
// blocks through the reflector, next hop unchanged; the reflector marks
// them as its clients.
func TestRouteReflector(t *testing.T) {
	l := newLab(t)
	off := false
	l.defaultSpec().NodeToNodeMeshEnabled = &off
	l.addNode(1, map[string]string{"route-reflector": "true"}, func(b *v3.NodeBGPSpec) { b.RouteReflectorClusterID = "224.0.0.1" })
	for i := 2; i <= 4; i++ {
		l.addNode(i, nil)
	}
	l.bgpPeer = []*v3.BGPPeer{{
		ObjectMeta: metav1.ObjectMeta{Name: "peer-with-route-reflectors"},
		Spec:       v3.BGPPeerSpec{NodeSelector: "all()", PeerSelector: "route-reflector == 'true'"},
	}}
	var ms []*member
	for i := 1; i <= 4; i++ {
		m := l.start(i)
		l.configure(m)
		ms = append(ms, m)
	}
	rr, clients := ms[0], ms[1:]
	eventually(t, settle, "sessions to the reflector", allEstablished(t, ms...))
	for _, c := range clients {
		if st := statusOf(t, c); len(st) != 1 || st[0].Address != rr.addr {
			t.Fatalf("%s peers with %+v, want only the reflector", c.name, st)
		}
	}
	for _, p := range statusOf(t, rr) {
		if p.Type != bgp.PeerTypeRRClient {
			t.Errorf("reflector sees %s as %q, want %q", p.Address, p.Type, bgp.PeerTypeRRClient)
		}
	}
	for _, c := range clients {
		want := []string{via(block(1), rr.addr)}
		for _, o := range clients {
			if o != c {
				want = append(want, via(block(o.i), o.addr))
			}
		}
		eventually(t, settle, c.name+" learns every block via its owner", wantLearned(c, want...))
	}
}

// Import filters: from a cluster peer only pool prefixes, never this
// node's own block (or a non-host prefix inside it); from an external peer
// anything (a ToR's default route).
func TestImportFilters(t *testing.T) {
	l := newLab(t)
	l.addNode(1, nil)
	l.addNode(2, nil)
	l.bgpPeer = []*v3.BGPPeer{{
		ObjectMeta: metav1.ObjectMeta{Name: "tor"},
		Spec:       v3.BGPPeerSpec{Node: "n1", PeerIP: l.addr(9).String(), ASNumber: 65100},
	}}
	n1, n2 := l.start(1), l.start(2)
	l.configure(n1)
	l.configure(n2)

	// n2 misbehaves: on top of its block it announces n1's block, a /28
	// inside it, a /32 inside it (a borrowed address: legitimate) and a
	// prefix outside every pool.
	borrowed := netip.MustParsePrefix("10.65.1.7/32")
	n2.sp.SetAdvertisements([]bgp.Advertisement{
		{Prefix: block(2), NextHop: n2.addr},
		{Prefix: block(1), NextHop: n2.addr},
		{Prefix: netip.MustParsePrefix("10.65.1.16/28"), NextHop: n2.addr},
		{Prefix: borrowed, NextHop: n2.addr},
		{Prefix: netip.MustParsePrefix("192.168.77.0/24"), NextHop: n2.addr},
	})

	// The ToR, another AS, announces a default route and an external prefix.
	tor := &member{i: 9, name: "tor", addr: l.addr(9)}
	tor.sp = New(l.opts("tor"))
	if err := tor.sp.Start(context.Background(), bgp.GlobalConfig{RouterID: tor.addr, ASN: 65100, ListenPort: l.port, ListenAddresses: []netip.Addr{tor.addr}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tor.sp.Stop(false) })
	tor.sp.SetPolicy(bgp.Policy{})
	tor.sp.SetAdvertisements([]bgp.Advertisement{
		{Prefix: netip.MustParsePrefix("0.0.0.0/0"), NextHop: tor.addr},
		{Prefix: netip.MustParsePrefix("192.168.50.0/24"), NextHop: tor.addr},
	})
	tor.sp.SetPeers([]bgp.PeerConfig{{Address: n1.addr, Port: uint16(l.port), ASN: 64512, Type: bgp.PeerTypeGlobal, LocalAddress: tor.addr}})

	eventually(t, settle, "sessions", allEstablished(t, n1, n2, tor))
	eventually(t, settle, "n1's filtered view", wantLearned(n1,
		via(block(2), n2.addr),
		via(borrowed, n2.addr),
		via(netip.MustParsePrefix("0.0.0.0/0"), tor.addr),
		via(netip.MustParsePrefix("192.168.50.0/24"), tor.addr),
	))
	eventually(t, settle, "counts show what was rejected", func() string {
		for _, p := range statusOf(t, n1) {
			switch p.Address {
			case n2.addr:
				if p.RoutesReceived != 5 || p.RoutesAccepted != 2 {
					return fmt.Sprintf("from n2: %+v", p)
				}
			case tor.addr:
				if p.Type != bgp.PeerTypeNode || p.RoutesReceived != 2 || p.RoutesAccepted != 2 || p.RoutesAdvertised != 1 {
					return fmt.Sprintf("from tor: %+v", p)
				}
			}
		}
		return ""
	})
	// Export: n1 sends the ToR its own block only, not n2's.
	eventually(t, settle, "tor's view", wantLearned(tor, via(block(1), n1.addr)))
}

// Broken peers say why in the status and hijack nothing.
func TestBadPeersReportErrors(t *testing.T) {
	l := newLab(t)
	l.addNode(1, nil)
	n1 := l.start(1)
	n1.sp.SetPolicy(bgp.Policy{Pools: l.pools, OwnBlocks: []netip.Prefix{block(1)}})

	// A speaker in AS 65002 that n1 believes is in AS 65001.
	wrongAS := &member{name: "wrong-as", addr: l.addr(2)}
	wrongAS.sp = New(l.opts("wrong-as"))
	if err := wrongAS.sp.Start(context.Background(), bgp.GlobalConfig{RouterID: wrongAS.addr, ASN: 65002, ListenPort: l.port, ListenAddresses: []netip.Addr{wrongAS.addr}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wrongAS.sp.Stop(false) })
	wrongAS.sp.SetPolicy(bgp.Policy{})
	wrongAS.sp.SetPeers([]bgp.PeerConfig{{Address: n1.addr, Port: uint16(l.port), ASN: 64512, LocalAddress: wrongAS.addr, Passive: true}})

	// A speaker with another password.
	badPW := &member{name: "bad-password", addr: l.addr(3)}
	badPW.sp = New(l.opts("bad-password"))
	if err := badPW.sp.Start(context.Background(), bgp.GlobalConfig{RouterID: badPW.addr, ASN: 64512, ListenPort: l.port, ListenAddresses: []netip.Addr{badPW.addr}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { badPW.sp.Stop(false) })
	badPW.sp.SetPolicy(bgp.Policy{})
	badPW.sp.SetAdvertisements([]bgp.Advertisement{{Prefix: block(1), NextHop: badPW.addr}})
	badPW.sp.SetPeers([]bgp.PeerConfig{{Address: n1.addr, Port: uint16(l.port), ASN: 64512, LocalAddress: badPW.addr, Password: "other", Passive: true}})

	desired := []bgp.PeerConfig{
		{Address: wrongAS.addr, Port: uint16(l.port), ASN: 65001, Type: bgp.PeerTypeGlobal, LocalAddress: n1.addr},
		{Address: badPW.addr, Port: uint16(l.port), ASN: 64512, Type: bgp.PeerTypeGlobal, LocalAddress: n1.addr, Password: "right"},
		{Address: l.addr(4), Port: uint16(l.port), ASN: 64512, Type: bgp.PeerTypeGlobal, LocalAddress: n1.addr}, // nobody there
		{Address: l.addr(5), ASN: 64512, Type: bgp.PeerTypeGlobal, ConfigError: "read password file /etc/x: no such file or directory"},
	}
	n1.sp.SetPeers(desired)
	want := map[netip.Addr]string{
		wrongAS.addr: "bad peer as",
		// MD5 mismatch: the kernel drops the segments, the connect times out.
		badPW.addr: "Socket: Connection timed out",
		l.addr(4):  "Socket: Connection refused",
		l.addr(5):  "read password file",
	}
	eventually(t, 3*settle, "errors reported", func() string {
		var bad []string
		for _, p := range statusOf(t, n1) {
			if p.Established() || !strings.Contains(strings.ToLower(p.LastError), strings.ToLower(want[p.Address])) {
				bad = append(bad, fmt.Sprintf("%s: %s %q (want %q)", p.Address, p.State, p.LastError, want[p.Address]))
			}
		}
		return strings.Join(bad, "; ")
	})
	since := map[netip.Addr]time.Time{}
	for _, p := range statusOf(t, n1) {
		t.Logf("status: %s %s %q", p.Address, p.State, p.LastError)
		since[p.Address] = p.Since
	}
	// The same desired peers again: the broken ones are not reconfigured
	// (their Since does not move).
	n1.sp.SetPeers(desired)
	settled(t, n1)
	if st := statusOf(t, n1); !st[3].Since.Equal(since[l.addr(5)]) {
		t.Fatalf("peer with a config error was re-done by an identical SetPeers: since %s, was %s", st[3].Since, since[l.addr(5)])
	}
	if got := learned(n1); len(got) != 0 {
		t.Fatalf("n1 learned %q from broken peers", got)
	}
}

// A matching TCP-MD5 password lets the session up.
func TestPasswordSession(t *testing.T) {
	l := newLab(t)
	l.defaultSpec().NodeMeshPassword = &v3.BGPPassword{Value: "s3cret"}
	l.addNode(1, nil)
	l.addNode(2, nil)
	n1, n2 := l.start(1), l.start(2)
	l.configure(n1)
	l.configure(n2)
	eventually(t, settle, "established with MD5", allEstablished(t, n1, n2))
	eventually(t, settle, "routes", wantLearned(n1, via(block(2), n2.addr)))
}

// A peer that goes away without a Cease (crash, or a graceful stop) keeps
// its routes, marked stale, for its graceful-restart time; then they go.
func TestWithdrawAfterGracefulRestartTime(t *testing.T) {
	l := newLab(t)
	l.defaultSpec().NodeMeshMaxRestartTime = &metav1.Duration{Duration: 3 * time.Second}
	l.addNode(1, nil)
	l.addNode(2, nil)
	n1, n2 := l.start(1), l.start(2)
	l.configure(n1)
	l.configure(n2)
	eventually(t, settle, "routes", wantLearned(n1, via(block(2), n2.addr)))

	n2.sp.Stop(true)
	eventually(t, settle, "route kept while the session is down", downButKept(t, n1, via(block(2), n2.addr)))
	eventually(t, settle, "route withdrawn after the restart time", wantLearned(n1))
}

// downButKept holds when m's (only) session is down and m still has the
// routes: graceful restart at work.
func downButKept(t *testing.T, m *member, routes ...string) func() string {
	return func() string {
		st := statusOf(t, m)
		if len(st) != 1 || st[0].Established() {
			return fmt.Sprintf("%s: session %+v still up", m.name, st)
		}
		return wantLearned(m, routes...)()
	}
}

// A Cease (non-graceful stop, peer deconfigured) withdraws at once: the
// 120 s restart time does not apply.
func TestCeaseWithdrawsAtOnce(t *testing.T) {
	l := newLab(t)
	l.addNode(1, nil)
	l.addNode(2, nil)
	n1, n2 := l.start(1), l.start(2)
	l.configure(n1)
	l.configure(n2)
	eventually(t, settle, "routes", wantLearned(n1, via(block(2), n2.addr)))
	n2.sp.Stop(false)
	eventually(t, settle, "withdrawn without waiting for the restart time", wantLearned(n1))
}

// The agent restarts: its peers hold its routes (graceful restart), the
// new speaker starts with Restarting set, re-learns everything, and the
// peer never withdraws the restarting node's block.
func TestAgentRestartKeepsForwarding(t *testing.T) {
	l := newLab(t)
	l.addNode(1, nil)
	l.addNode(2, nil)
	n1, n2 := l.start(1), l.start(2)
	l.configure(n1)
	l.configure(n2)
	eventually(t, settle, "routes", wantLearned(n1, via(block(2), n2.addr)))

	withdrawn := map[netip.Prefix]int{}
	drain := func() {
		_, w := n1.sp.TakeRouteChanges()
		for _, p := range w {
			withdrawn[p]++
		}
	}
	drain()

	n2.sp.Stop(true)
	eventually(t, settle, "n1 holds n2's block while n2 is down", func() string { drain(); return downButKept(t, n1, via(block(2), n2.addr))() })

	again := l.start(2, func(g *bgp.GlobalConfig) { g.Restarting = true })
	l.configure(again)
	eventually(t, settle, "n1 has n2's block fresh again", func() string { drain(); return wantLearned(n1, via(block(2), n2.addr))() })
	eventually(t, settle, "the restarted node re-learned n1's block", wantLearned(again, via(block(1), n1.addr)))
	select {
	case <-again.sp.Synced():
	case <-time.After(settle):
		t.Fatal("restarted speaker never reported its initial sync")
	}
	drain()
	if withdrawn[block(2)] != 0 {
		t.Fatalf("n1 withdrew n2's block %d times during n2's restart", withdrawn[block(2)])
	}
}

// Route counts are not served from an earlier count once routes changed:
// a status taken before a block arrives must not make the next one say
// "1 received, 0 accepted".
func TestRouteCountsFollowChanges(t *testing.T) {
	l := newLab(t)
	l.addNode(1, nil)
	l.addNode(2, nil)
	n1, n2 := l.start(1), l.start(2)
	l.configure(n1)
	// n2 has its peers but nothing to advertise yet.
	res := statusOf(t, n1) // counts taken (and kept) now
	if len(res) != 1 {
		t.Fatalf("n1's peers: %+v", res)
	}
	n2.sp.SetPolicy(bgp.Policy{Pools: l.pools, OwnBlocks: []netip.Prefix{block(2)}})
	n2.sp.SetPeers([]bgp.PeerConfig{{Address: n1.addr, Port: uint16(l.port), ASN: bgp.DefaultASNumber, Type: bgp.PeerTypeMesh, LocalAddress: n2.addr, ClusterInternal: true}})
	eventually(t, settle, "established", allEstablished(t, n1, n2))
	statusOf(t, n1)
	n2.sp.SetAdvertisements([]bgp.Advertisement{{Prefix: block(2), NextHop: n2.addr}})
	eventually(t, settle, "n1 learns n2's block", wantLearned(n1, via(block(2), n2.addr)))
	if st := statusOf(t, n1)[0]; st.RoutesReceived != 1 || st.RoutesAccepted != 1 {
		t.Fatalf("n1's counts once it learned n2's block: %d received, %d accepted", st.RoutesReceived, st.RoutesAccepted)
	}
}
