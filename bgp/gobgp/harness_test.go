package gobgp

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/bgp"
	"github.com/tabbynet/tabby/bgp/peers"
)

// lab is a set of in-process speakers on 127.<a>.<b>.<n>: all of 127/8 is
// routable on lo, so every speaker gets its own address and they share one
// port, like nodes of a cluster. Each test takes a random /24 and a free
// port so tests do not collide. No root needed.
type lab struct {
	t       *testing.T
	a, b    byte
	port    int
	logs    *testLogs
	nodes   []*v3.Node
	configs []*v3.BGPConfiguration
	bgpPeer []*v3.BGPPeer
	pools   []netip.Prefix
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{t: t, a: byte(100 + rand.IntN(150)), b: byte(rand.IntN(256)), logs: newTestLogs(t)}
	ln, err := net.Listen("tcp", l.addr(1).String()+":0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	l.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	l.configs = []*v3.BGPConfiguration{{
		ObjectMeta: metav1.ObjectMeta{Name: "default"},
		Spec:       v3.BGPConfigurationSpec{ListenPort: uint16(l.port)},
	}}
	l.pools = []netip.Prefix{netip.MustParsePrefix("10.65.0.0/16")}
	return l
}

func (l *lab) addr(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, l.a, l.b, byte(i)}) }

// block is node i's IPAM block, 10.65.<i>.0/26.
func block(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 65, byte(i), 0}), 26)
}

func (l *lab) defaultSpec() *v3.BGPConfigurationSpec { return &l.configs[0].Spec }

// addNode registers Node n<i> at 127.a.b.i.
func (l *lab) addNode(i int, labels map[string]string, mut ...func(*v3.NodeBGPSpec)) *v3.Node {
	n := &v3.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("n%d", i), Labels: labels}}
	n.Spec.BGP = &v3.NodeBGPSpec{IPv4Address: l.addr(i).String() + "/8"}
	for _, m := range mut {
		m(n.Spec.BGP)
	}
	l.nodes = append(l.nodes, n)
	return n
}

type member struct {
	i    int
	name string
	addr netip.Addr
	sp   *Speaker
}

func (l *lab) opts(name string) Options {
	return Options{
		Logger:         l.logs.logger(name),
		GoBGPLogLevel:  slog.LevelWarn,
		ConnectRetry:   time.Second,
		IdleHoldTime:   time.Second,
		ResyncInterval: time.Hour,
	}
}

// start runs a speaker for node n<i> (which must have been added).
func (l *lab) start(i int, mut ...func(*bgp.GlobalConfig)) *member {
	l.t.Helper()
	m := &member{i: i, name: fmt.Sprintf("n%d", i), addr: l.addr(i)}
	m.sp = New(l.opts(m.name))
	g := bgp.GlobalConfig{RouterID: m.addr, ASN: bgp.DefaultASNumber, ListenPort: l.port, ListenAddresses: []netip.Addr{m.addr}}
	if res, err := peers.Compute(peers.Input{NodeName: m.name, Nodes: l.nodes, Configs: l.configs}); err == nil {
		g.ASN = res.Global.ASN
	}
	for _, f := range mut {
		f(&g)
	}
	if err := m.sp.Start(context.Background(), g); err != nil {
		l.t.Fatalf("start %s: %v", m.name, err)
	}
	l.t.Cleanup(func() { m.sp.Stop(false) })
	return m
}

// configure gives m the peers computed from the lab's resources, the lab's
// pools, its own block as filter input, and advertises its block.
func (l *lab) configure(m *member) {
	l.t.Helper()
	res, err := peers.Compute(peers.Input{NodeName: m.name, Nodes: l.nodes, Peers: l.bgpPeer, Configs: l.configs})
	if err != nil {
		l.t.Fatalf("compute peers of %s: %v", m.name, err)
	}
	if len(res.Problems) > 0 {
		l.t.Fatalf("peer problems for %s: %q", m.name, res.Problems)
	}
	m.sp.SetPolicy(bgp.Policy{Pools: l.pools, OwnBlocks: []netip.Prefix{block(m.i)}})
	m.sp.SetAdvertisements([]bgp.Advertisement{{Prefix: block(m.i), NextHop: m.addr}})
	m.sp.SetPeers(res.Peers)
}

// learned renders m's learned routes as sorted "prefix via nexthop" lines.
func learned(m *member) []string {
	var out []string
	for _, r := range m.sp.Learned() {
		out = append(out, r.Prefix.String()+" via "+r.NextHop.String())
	}
	sort.Strings(out)
	return out
}

// eventually polls cond every 50 ms until it returns "" or timeout passes,
// then fails with cond's last explanation.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func statusOf(t *testing.T, m *member) []bgp.PeerStatus {
	t.Helper()
	st, err := m.sp.PeerStatus(context.Background())
	if err != nil {
		t.Fatalf("status of %s: %v", m.name, err)
	}
	return st
}

func allEstablished(t *testing.T, ms ...*member) func() string {
	return func() string {
		var bad []string
		for _, m := range ms {
			for _, p := range statusOf(t, m) {
				if !p.Established() {
					bad = append(bad, fmt.Sprintf("%s->%s %s %s", m.name, p.Address, p.State, p.LastError))
				}
			}
		}
		return strings.Join(bad, "; ")
	}
}

func wantLearned(m *member, want ...string) func() string {
	sort.Strings(want)
	return func() string {
		got := learned(m)
		if strings.Join(got, "\n") == strings.Join(want, "\n") {
			return ""
		}
		return fmt.Sprintf("%s learned %q, want %q", m.name, got, want)
	}
}

func via(p netip.Prefix, nh netip.Addr) string { return p.String() + " via " + nh.String() }

// testLogs routes every speaker's logs to t.Log until the test ends (GoBGP
// goroutines may log while a speaker stops; t.Log after the end panics).
type testLogs struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func newTestLogs(t *testing.T) *testLogs {
	l := &testLogs{t: t}
	t.Cleanup(func() { l.mu.Lock(); l.done = true; l.mu.Unlock() })
	return l
}

func (l *testLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (l *testLogs) logger(name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
}

// settled waits until m's speaker has applied the desired state set
// before this call.
func settled(t *testing.T, m *member) {
	t.Helper()
	m.sp.mu.Lock()
	target := m.sp.desired.gen
	m.sp.mu.Unlock()
	eventually(t, settle, m.name+" applies its desired state", func() string {
		if m.sp.appliedGen.Load() >= target {
			return ""
		}
		return "apply pending"
	})
}
