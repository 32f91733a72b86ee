package peers

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/bgp"
)

// node builds a Node; addrs are "10.0.0.1/24" or "fd00::1/64" style.
func node(name string, labels map[string]string, addrs ...string) *v3.Node {
	n := &v3.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	n.Spec.BGP = &v3.NodeBGPSpec{}
	for _, a := range addrs {
		if strings.Contains(a, ":") {
			n.Spec.BGP.IPv6Address = a
		} else {
			n.Spec.BGP.IPv4Address = a
		}
	}
	return n
}

func withAS(n *v3.Node, as uint32) *v3.Node {
	a := v3.ASNumber(as)
	n.Spec.BGP.ASNumber = &a
	return n
}

func withRR(n *v3.Node, id string) *v3.Node {
	n.Spec.BGP.RouteReflectorClusterID = id
	return n
}

func peer(name string, spec v3.BGPPeerSpec) *v3.BGPPeer {
	return &v3.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

func boolp(b bool) *bool { return &b }
func asp(a uint32) *v3.ASNumber {
	x := v3.ASNumber(a)
	return &x
}
func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func defaultConfig(mut func(*v3.BGPConfigurationSpec)) *v3.BGPConfiguration {
	c := &v3.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if mut != nil {
		mut(&c.Spec)
	}
	return c
}

var ip = netip.MustParseAddr

// summary renders peers compactly so a table of expectations stays readable:
// "<addr>:<port> as<asn> <type> [passive] [internal] [rr=<id>] [src=<addr>] [pw=<pw>] [err=<e>]".
func summary(ps []bgp.PeerConfig) []string {
	var out []string
	for _, p := range ps {
		s := fmt.Sprintf("%s:%d as%d %s", p.Address, p.EffectivePort(), p.ASN, p.Type)
		if p.Passive {
			s += " passive"
		}
		if p.ClusterInternal {
			s += " internal"
		}
		if p.RouteReflectorClient {
			s += " rr=" + p.RouteReflectorClusterID
		}
		if p.LocalAddress.IsValid() {
			s += " src=" + p.LocalAddress.String()
		}
		if p.LocalASN != 0 {
			s += fmt.Sprintf(" localas=%d", p.LocalASN)
		}
		if p.Password != "" {
			s += " pw=" + p.Password
		}
		if p.RestartTime != 0 {
			s += " gr=" + p.RestartTime.String()
		}
		if p.KeepaliveTime != 0 {
			s += " ka=" + p.KeepaliveTime.String()
		}
		if p.TTLSecurity != 0 {
			s += fmt.Sprintf(" ttl=%d", p.TTLSecurity)
		}
		if p.AllowOwnAS != 0 {
			s += fmt.Sprintf(" allowas=%d", p.AllowOwnAS)
		}
		if p.ConfigError != "" {
			s += " err=" + p.ConfigError
		}
		out = append(out, s)
	}
	return out
}

func TestCompute(t *testing.T) {
	three := []*v3.Node{
		node("n1", nil, "10.0.0.1/24"),
		node("n2", nil, "10.0.0.2/24"),
		node("n3", nil, "10.0.0.3/24"),
	}
	rrNodes := []*v3.Node{
		withRR(node("rr1", map[string]string{"route-reflector": "true"}, "10.0.0.1/24"), "224.0.0.1"),
		withRR(node("rr2", map[string]string{"route-reflector": "true"}, "10.0.0.2/24"), "224.0.0.1"),
		node("c1", nil, "10.0.0.11/24"),
		node("c2", nil, "10.0.0.12/24"),
	}
	// Calico's documented route reflector setup: mesh off, every node peers
	// with the reflectors (confd mock data explicit_peering/route_reflector).
	rrPeers := []*v3.BGPPeer{peer("peer-with-route-reflectors", v3.BGPPeerSpec{
		NodeSelector: "all()", PeerSelector: "route-reflector == 'true'",
	})}
	meshOff := defaultConfig(func(s *v3.BGPConfigurationSpec) { s.NodeToNodeMeshEnabled = boolp(false) })
	passwords := func(pw *v3.BGPPassword) (string, error) {
		switch {
		case pw.Value != "":
			return pw.Value, nil
		case pw.File == "/etc/good":
			return "from-file", nil
		case pw.File != "":
			return "", fmt.Errorf("read password file %s: no such file or directory", pw.File)
		default:
			return "", errors.New("secretKeyRef needs the Kubernetes datastore")
		}
	}

	tests := []struct {
		name     string
		me       string
		nodes    []*v3.Node
		peers    []*v3.BGPPeer
		configs  []*v3.BGPConfiguration
		want     []string
		problems []string
	}{
		{
			name:  "default full mesh, passive towards greater addresses",
			me:    "n2",
			nodes: three,
			want: []string{
				"10.0.0.1:179 as64512 node-to-node mesh internal src=10.0.0.2",
				"10.0.0.3:179 as64512 node-to-node mesh passive internal src=10.0.0.2",
			},
		},
		{
			// confd compares the addresses as strings: "10.0.0.10" < "10.0.0.9".
			// Both ends must use the same rule or both wait for ever.
			name:  "passive rule compares addresses as strings like confd",
			me:    "n9",
			nodes: []*v3.Node{node("n9", nil, "10.0.0.9/24"), node("n10", nil, "10.0.0.10/24")},
			want:  []string{"10.0.0.10:179 as64512 node-to-node mesh internal src=10.0.0.9"},
		},
		{
			name:  "the other end of the same pair is passive",
			me:    "n10",
			nodes: []*v3.Node{node("n9", nil, "10.0.0.9/24"), node("n10", nil, "10.0.0.10/24")},
			want:  []string{"10.0.0.9:179 as64512 node-to-node mesh passive internal src=10.0.0.10"},
		},
		{
			name:    "mesh disabled",
			me:      "n1",
			nodes:   three,
			configs: []*v3.BGPConfiguration{meshOff},
		},
		{
			name: "AS, port, password and restart time for the mesh",
			me:   "n1",
			nodes: []*v3.Node{
				node("n1", nil, "10.0.0.1/24"),
				withAS(node("n2", nil, "10.0.0.2/24"), 65002),
			},
			configs: []*v3.BGPConfiguration{
				defaultConfig(func(s *v3.BGPConfigurationSpec) {
					s.ASNumber = asp(65000)
					s.ListenPort = 1790
					s.NodeMeshPassword = &v3.BGPPassword{Value: "meshpw"}
					s.NodeMeshMaxRestartTime = dur(30 * time.Second)
				}),
				{ObjectMeta: metav1.ObjectMeta{Name: "node.n2"}, Spec: v3.BGPConfigurationSpec{ListenPort: 1791}},
			},
			want: []string{"10.0.0.2:1791 as65002 node-to-node mesh passive internal src=10.0.0.1 pw=meshpw gr=30s"},
		},
		{
			name: "dual stack mesh peers per family",
			me:   "n1",
			nodes: []*v3.Node{
				node("n1", nil, "10.0.0.1/24", "fd00::1/64"),
				node("n2", nil, "10.0.0.2/24", "fd00::2/64"),
				node("n3", nil, "10.0.0.3/24"), // no IPv6: no IPv6 session
			},
			want: []string{
				"10.0.0.2:179 as64512 node-to-node mesh passive internal src=10.0.0.1",
				"10.0.0.3:179 as64512 node-to-node mesh passive internal src=10.0.0.1",
				"fd00::2:179 as64512 node-to-node mesh passive internal src=fd00::1",
			},
		},
		{
			name:  "mesh skips route reflectors",
			me:    "c1",
			nodes: rrNodes,
			want:  []string{"10.0.0.12:179 as64512 node-to-node mesh passive internal src=10.0.0.11"},
		},
		{
			name:  "a route reflector has no mesh",
			me:    "rr1",
			nodes: rrNodes,
		},
		{
			name:    "route reflector topology: client side",
			me:      "c1",
			nodes:   rrNodes,
			peers:   rrPeers,
			configs: []*v3.BGPConfiguration{meshOff},
			want: []string{
				"10.0.0.1:179 as64512 node specific internal src=10.0.0.11",
				"10.0.0.2:179 as64512 node specific passive internal src=10.0.0.11",
			},
		},
		{
			name:    "route reflector topology: reflector side has its clients, not its twin, as clients",
			me:      "rr1",
			nodes:   rrNodes,
			peers:   rrPeers,
			configs: []*v3.BGPConfiguration{meshOff},
			want: []string{
				"10.0.0.2:179 as64512 node specific passive internal src=10.0.0.1",
				"10.0.0.11:179 as64512 route reflector client passive internal rr=224.0.0.1 src=10.0.0.1",
				"10.0.0.12:179 as64512 route reflector client passive internal rr=224.0.0.1 src=10.0.0.1",
			},
		},
		{
			name:  "global peer to a ToR, with port, password and timers",
			me:    "n1",
			nodes: three,
			peers: []*v3.BGPPeer{peer("tor", v3.BGPPeerSpec{
				PeerIP: "192.168.1.1:1179", ASNumber: 65100,
				Password:      &v3.BGPPassword{Value: "s3cret"},
				KeepaliveTime: dur(10 * time.Second), MaxRestartTime: dur(45 * time.Second),
				TTLSecurity: func() *uint8 { x := uint8(2); return &x }(), NumAllowedLocalASNumbers: func() *int32 { x := int32(1); return &x }(),
				LocalASNumber: asp(65010),
			})},
			configs: []*v3.BGPConfiguration{meshOff},
			want:    []string{"192.168.1.1:1179 as65100 global src=10.0.0.1 localas=65010 pw=s3cret gr=45s ka=10s ttl=2 allowas=1"},
		},
		{
			name:  "node specific by name and by nodeSelector; sourceAddress None",
			me:    "n1",
			nodes: []*v3.Node{node("n1", map[string]string{"rack": "a"}, "10.0.0.1/24"), node("n2", map[string]string{"rack": "b"}, "10.0.0.2/24")},
			peers: []*v3.BGPPeer{
				peer("by-name", v3.BGPPeerSpec{Node: "n1", PeerIP: "192.168.1.1", ASNumber: 65100}),
				peer("by-selector", v3.BGPPeerSpec{NodeSelector: "rack == 'a'", PeerIP: "192.168.1.2", ASNumber: 65100, SourceAddress: v3.SourceAddressNone}),
				peer("other-rack", v3.BGPPeerSpec{NodeSelector: "rack == 'b'", PeerIP: "192.168.1.3", ASNumber: 65100}),
				peer("other-node", v3.BGPPeerSpec{Node: "n2", PeerIP: "192.168.1.4", ASNumber: 65100}),
			},
			configs: []*v3.BGPConfiguration{meshOff},
			want: []string{
				"192.168.1.1:179 as65100 node specific src=10.0.0.1",
				"192.168.1.2:179 as65100 node specific",
			},
		},
		{
			name:  "global peering beats node-specific for the same address",
			me:    "n1",
			nodes: three,
			peers: []*v3.BGPPeer{
				peer("a-node", v3.BGPPeerSpec{Node: "n1", PeerIP: "192.168.1.1", ASNumber: 65101}),
				peer("z-global", v3.BGPPeerSpec{PeerIP: "192.168.1.1", ASNumber: 65100}),
			},
			configs: []*v3.BGPConfiguration{meshOff},
			want:    []string{"192.168.1.1:179 as65100 global src=10.0.0.1"},
		},
		{
			name:  "explicit peering to another node beats the mesh, and is internal",
			me:    "n1",
			nodes: three,
			peers: []*v3.BGPPeer{peer("to-n3", v3.BGPPeerSpec{Node: "n1", PeerIP: "10.0.0.3", ASNumber: 64512, Password: &v3.BGPPassword{Value: "x"}})},
			want: []string{
				"10.0.0.2:179 as64512 node-to-node mesh passive internal src=10.0.0.1",
				"10.0.0.3:179 as64512 node specific passive internal src=10.0.0.1 pw=x",
			},
		},
		{
			name:    "reverse peering: the peer IP's node peers back",
			me:      "n3",
			nodes:   three,
			peers:   []*v3.BGPPeer{peer("n1-to-n3", v3.BGPPeerSpec{Node: "n1", PeerIP: "10.0.0.3", ASNumber: 64512})},
			configs: []*v3.BGPConfiguration{meshOff},
			want:    []string{"10.0.0.1:179 as64512 node specific internal src=10.0.0.3"},
		},
		{
			name:    "no reverse peering when the AS does not match this node",
			me:      "n3",
			nodes:   three,
			peers:   []*v3.BGPPeer{peer("n1-to-n3", v3.BGPPeerSpec{Node: "n1", PeerIP: "10.0.0.3", ASNumber: 65000})},
			configs: []*v3.BGPConfiguration{meshOff},
		},
		{
			name:  "reversePeering Manual",
			me:    "n3",
			nodes: three,
			peers: []*v3.BGPPeer{peer("n1-to-n3", v3.BGPPeerSpec{Node: "n1", PeerIP: "10.0.0.3", ASNumber: 64512,
				ReversePeering: func() *v3.ReversePeering { m := v3.ReversePeeringManual; return &m }()})},
			configs: []*v3.BGPConfiguration{meshOff},
		},
		{
			name: "peerSelector uses the selected nodes' AS and port",
			me:   "n1",
			nodes: []*v3.Node{
				node("n1", map[string]string{"role": "edge"}, "10.0.0.1/24"),
				withAS(node("n2", map[string]string{"role": "core"}, "10.0.0.2/24"), 65002),
				node("n3", map[string]string{"role": "core"}, "10.0.0.3/24"),
			},
			peers:   []*v3.BGPPeer{peer("edge-to-core", v3.BGPPeerSpec{NodeSelector: "role == 'edge'", PeerSelector: "role == 'core'"})},
			configs: []*v3.BGPConfiguration{meshOff, {ObjectMeta: metav1.ObjectMeta{Name: "node.n3"}, Spec: v3.BGPConfigurationSpec{ListenPort: 1800}}},
			want: []string{
				"10.0.0.2:179 as65002 node specific passive internal src=10.0.0.1",
				"10.0.0.3:1800 as64512 node specific passive internal src=10.0.0.1",
			},
		},
		{
			name:  "passwords: file, unreadable file, secret without Kubernetes",
			me:    "n1",
			nodes: three,
			peers: []*v3.BGPPeer{
				peer("a", v3.BGPPeerSpec{PeerIP: "192.168.1.1", ASNumber: 65100, Password: &v3.BGPPassword{File: "/etc/good"}}),
				peer("b", v3.BGPPeerSpec{PeerIP: "192.168.1.2", ASNumber: 65100, Password: &v3.BGPPassword{File: "/etc/missing"}}),
				peer("c", v3.BGPPeerSpec{PeerIP: "192.168.1.3", ASNumber: 65100, Password: &v3.BGPPassword{SecretKeyRef: &v3.SecretKeySelector{Name: "s", Key: "k"}}}),
			},
			configs: []*v3.BGPConfiguration{meshOff},
			want: []string{
				"192.168.1.1:179 as65100 global src=10.0.0.1 pw=from-file",
				"192.168.1.2:179 as65100 global src=10.0.0.1 err=BGPPeer b password: read password file /etc/missing: no such file or directory",
				"192.168.1.3:179 as65100 global src=10.0.0.1 err=BGPPeer c password: secretKeyRef needs the Kubernetes datastore",
			},
		},
		{
			name:  "bad input is reported and skipped",
			me:    "n1",
			nodes: three,
			peers: []*v3.BGPPeer{
				peer("bad-ip", v3.BGPPeerSpec{PeerIP: "10.0.0.300", ASNumber: 65100}),
				peer("bad-sel", v3.BGPPeerSpec{NodeSelector: "role ==", PeerIP: "192.168.1.1", ASNumber: 65100}),
				peer("v6-on-v4-node", v3.BGPPeerSpec{PeerIP: "fd00::99", ASNumber: 65100}),
			},
			configs: []*v3.BGPConfiguration{meshOff},
			problems: []string{
				`BGPPeer "bad-ip": spec.peerIP: "10.0.0.300" is not a valid peer IP`,
				`BGPPeer "bad-sel": spec.nodeSelector`,
				`BGPPeer "v6-on-v4-node": peer fd00::99 is IPv6 but node "n1" has no such address`,
			},
		},
		{
			name:    "a peer at this node's own address is dropped",
			me:      "n1",
			nodes:   three,
			peers:   []*v3.BGPPeer{peer("self", v3.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65100})},
			configs: []*v3.BGPConfiguration{meshOff},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Compute(Input{NodeName: tc.me, Nodes: tc.nodes, Peers: tc.peers, Configs: tc.configs, Password: passwords})
			if err != nil {
				t.Fatalf("Compute: %v", err)
			}
			if diff := cmp.Diff(tc.want, summary(res.Peers)); diff != "" {
				t.Errorf("peers (-want +got):\n%s", diff)
			}
			if len(res.Problems) != len(tc.problems) {
				t.Fatalf("problems = %q, want %d matching %q", res.Problems, len(tc.problems), tc.problems)
			}
			for i, p := range tc.problems {
				if !strings.HasPrefix(res.Problems[i], p) {
					t.Errorf("problem %d = %q, want prefix %q", i, res.Problems[i], p)
				}
			}
		})
	}
}

func TestComputeGlobal(t *testing.T) {
	nodes := []*v3.Node{
		withRR(withAS(node("n1", nil, "10.0.0.1/24", "fd00::1/64"), 65001), "224.0.0.9"),
		node("n2", nil, "10.0.0.2"),
	}
	cfgs := []*v3.BGPConfiguration{
		defaultConfig(func(s *v3.BGPConfigurationSpec) { s.ASNumber = asp(65000); s.ListenPort = 1790 }),
		{ObjectMeta: metav1.ObjectMeta{Name: "node.n1"}, Spec: v3.BGPConfigurationSpec{ListenPort: 1791}},
	}
	res, err := Compute(Input{NodeName: "n1", Nodes: nodes, Configs: cfgs})
	if err != nil {
		t.Fatal(err)
	}
	want := bgp.GlobalConfig{RouterID: ip("10.0.0.1"), ASN: 65001, ListenPort: 1791}
	if diff := cmp.Diff(want, res.Global, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("global (-want +got):\n%s", diff)
	}
	if res.NodeIPv4 != ip("10.0.0.1") || res.NodeIPv6 != ip("fd00::1") || res.ClusterID != "224.0.0.9" || !res.MeshEnabled {
		t.Errorf("got v4 %s v6 %s cluster %q mesh %v", res.NodeIPv4, res.NodeIPv6, res.ClusterID, res.MeshEnabled)
	}

	// n2 inherits the default AS and port; a bare address is accepted.
	res, err = Compute(Input{NodeName: "n2", Nodes: nodes, Configs: cfgs, RouterID: ip("1.2.3.4")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Global.ASN != 65000 || res.Global.ListenPort != 1790 || res.Global.RouterID != ip("1.2.3.4") {
		t.Errorf("n2 global = %+v", res.Global)
	}

	if _, err := Compute(Input{NodeName: "ghost", Nodes: nodes}); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("unknown node: err = %v, want ErrUnknownNode", err)
	}
	v6only := []*v3.Node{node("n6", nil, "fd00::6/64")}
	if _, err := Compute(Input{NodeName: "n6", Nodes: v6only}); err == nil || !strings.Contains(err.Error(), "CALICO_ROUTER_ID") {
		t.Errorf("IPv6-only node without router ID: err = %v", err)
	}
	if res, err := Compute(Input{NodeName: "n6", Nodes: v6only, RouterID: ip("6.6.6.6")}); err != nil || res.Global.RouterID != ip("6.6.6.6") {
		t.Errorf("IPv6-only node with router ID: %+v, %v", res.Global, err)
	}
}

// The passive choice must be complementary on the two ends of every
// session, or sessions never come up (both wait) or race.
func TestPassiveIsComplementary(t *testing.T) {
	var nodes []*v3.Node
	for i := 1; i <= 12; i++ {
		nodes = append(nodes, node(fmt.Sprintf("n%d", i), nil, fmt.Sprintf("10.0.%d.%d/16", i%3, i*7)))
	}
	passiveOf := map[[2]netip.Addr]bool{}
	for _, n := range nodes {
		res, err := Compute(Input{NodeName: n.Name, Nodes: nodes})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range res.Peers {
			passiveOf[[2]netip.Addr{res.NodeIPv4, p.Address}] = p.Passive
		}
	}
	if len(passiveOf) != 12*11 {
		t.Fatalf("got %d directed sessions, want %d", len(passiveOf), 12*11)
	}
	for k, p := range passiveOf {
		if back := passiveOf[[2]netip.Addr{k[1], k[0]}]; back == p {
			t.Errorf("%s->%s passive=%v and %s->%s passive=%v", k[0], k[1], p, k[1], k[0], back)
		}
	}
}
