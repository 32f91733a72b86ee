package calc_test

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/felix/calc"
	"github.com/tabbynet/tabby/felix/dataplane"
)

func wep(ns, name, node, iface string, ips ...string) *v3.WorkloadEndpoint {
	return &v3.WorkloadEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v3.WorkloadEndpointSpec{Node: node, InterfaceName: iface, IPNetworks: ips},
	}
}

func aff(node, cidr string, state v3.BlockAffinityState) *v3.BlockAffinity {
	return &v3.BlockAffinity{
		ObjectMeta: metav1.ObjectMeta{Name: node + "-" + strings.NewReplacer(".", "-", "/", "-", ":", "-").Replace(cidr)},
		Spec:       v3.BlockAffinitySpec{Node: node, CIDR: cidr, State: state, Type: "host"},
	}
}

func TestCompute(t *testing.T) {
	deleted := aff("n1", "10.65.0.192/26", v3.AffinityStateConfirmed)
	deleted.Spec.Deleted = true
	virtual := aff("n1", "10.65.1.0/26", v3.AffinityStateConfirmed)
	virtual.Spec.Type = "virtual"

	tests := []struct {
		name     string
		in       calc.Input
		want     string // dataplane.State.String()
		problems []string
	}{
		{
			name: "empty",
			in:   calc.Input{NodeName: "n1"},
			want: "",
		},
		{
			name: "local workloads, other nodes ignored",
			in: calc.Input{NodeName: "n1", Workloads: []*v3.WorkloadEndpoint{
				wep("ns1", "a", "n1", "cali1111", "10.65.0.5/32"),
				wep("ns1", "b", "n2", "cali2222", "10.65.0.6/32"),
				wep("ns2", "c", "n1", "cali3333", "10.65.0.7"), // bare address: a host route
			}},
			want: "route 10.65.0.5/32 dev cali1111 scope link\nroute 10.65.0.7/32 dev cali3333 scope link\niface cali1111\niface cali3333",
		},
		{
			name: "dual stack with IPv6 support",
			in: calc.Input{NodeName: "n1", IPForwarding: true, IPv6Support: true, Workloads: []*v3.WorkloadEndpoint{
				wep("ns1", "a", "n1", "cali1", "10.65.0.5/32", "fd00:65::5/128"),
			}, Affinities: []*v3.BlockAffinity{aff("n1", "fd00:65::/122", v3.AffinityStateConfirmed)}},
			want: "route 10.65.0.5/32 dev cali1 scope link\nroute blackhole fd00:65::/122\nroute fd00:65::5/128 dev cali1 scope link\niface cali1\nipv4 forwarding\nipv6 forwarding",
		},
		{
			name: "IPv6 ignored without IPv6 support",
			in: calc.Input{NodeName: "n1", Workloads: []*v3.WorkloadEndpoint{
				wep("ns1", "a", "n1", "cali1", "10.65.0.5/32", "fd00:65::5/128"),
			}, Affinities: []*v3.BlockAffinity{aff("n1", "fd00:65::/122", v3.AffinityStateConfirmed)},
				RemoteRoutes: map[netip.Prefix]netip.Addr{netip.MustParsePrefix("fd00:66::/122"): netip.MustParseAddr("fd00::2")}},
			want: "route 10.65.0.5/32 dev cali1 scope link\niface cali1",
		},
		{
			name: "only confirmed live host affinities of this node",
			in: calc.Input{NodeName: "n1", Affinities: []*v3.BlockAffinity{
				aff("n1", "10.65.0.0/26", v3.AffinityStateConfirmed),
				aff("n1", "10.65.0.64/26", v3.AffinityStatePending),
				aff("n1", "10.65.0.128/26", v3.AffinityStatePendingDeletion),
				deleted,
				virtual,
				aff("n2", "10.65.2.0/26", v3.AffinityStateConfirmed),
				aff("n1", "10.65.0.0/26", v3.AffinityStateConfirmed), // duplicate
			}},
			want: "route blackhole 10.65.0.0/26",
		},
		{
			name: "borrowed address routed like any workload address",
			in: calc.Input{NodeName: "n1",
				Workloads:  []*v3.WorkloadEndpoint{wep("ns1", "a", "n1", "cali1", "10.65.9.9/32")},
				Affinities: []*v3.BlockAffinity{aff("n1", "10.65.0.0/26", v3.AffinityStateConfirmed)},
				// The owner of the borrowed-from block advertises it; the /32
				// is more specific and wins in the kernel.
				RemoteRoutes: map[netip.Prefix]netip.Addr{netip.MustParsePrefix("10.65.9.0/26"): netip.MustParseAddr("192.168.0.2")},
			},
			want: "route blackhole 10.65.0.0/26\nroute 10.65.9.0/26 via 192.168.0.2\nroute 10.65.9.9/32 dev cali1 scope link\niface cali1",
		},
		{
			name: "remote routes, local knowledge wins",
			in: calc.Input{NodeName: "n1",
				Affinities: []*v3.BlockAffinity{aff("n1", "10.65.0.0/26", v3.AffinityStateConfirmed)},
				Workloads:  []*v3.WorkloadEndpoint{wep("ns1", "a", "n1", "cali1", "10.65.3.3/32")},
				RemoteRoutes: map[netip.Prefix]netip.Addr{
					netip.MustParsePrefix("10.65.1.0/26"): netip.MustParseAddr("192.168.0.2"),
					netip.MustParsePrefix("10.65.0.0/26"): netip.MustParseAddr("192.168.0.3"), // our block
					netip.MustParsePrefix("10.65.3.3/32"): netip.MustParseAddr("192.168.0.4"), // our pod
					netip.MustParsePrefix("10.65.4.4/32"): netip.MustParseAddr("192.168.0.4"), // a remote borrowed /32
					netip.MustParsePrefix("10.65.5.0/26"): {},                                 // no next hop
				}},
			want: "route blackhole 10.65.0.0/26\nroute 10.65.1.0/26 via 192.168.0.2\nroute 10.65.3.3/32 dev cali1 scope link\nroute 10.65.4.4/32 via 192.168.0.4\niface cali1",
			problems: []string{
				"remote route 10.65.0.0/26 via 192.168.0.3: ignored, the prefix is local (this node's block 10.65.0.0/26)",
				`remote route 10.65.3.3/32 via 192.168.0.4: ignored, the prefix is local (WorkloadEndpoint "ns1/a")`,
				"remote route 10.65.5.0/26 via invalid IP: invalid",
			},
		},
		{
			name: "bad endpoints",
			in: calc.Input{NodeName: "n1", Workloads: []*v3.WorkloadEndpoint{
				wep("ns1", "a", "n1", "cali1", "10.65.0.5/32", "not-an-ip", "10.65.0.6/32"),
				wep("ns1", "b", "n1", "", "10.65.0.7/32"),
				wep("ns1", "c", "n1", "cali3", "10.65.0.5/32"), // same address as ns1/a
			}},
			want: "route 10.65.0.5/32 dev cali1 scope link\nroute 10.65.0.6/32 dev cali1 scope link\niface cali1\niface cali3",
			problems: []string{
				`WorkloadEndpoint "ns1/a": ipNetworks entry "not-an-ip": ParseAddr("not-an-ip"): unable to parse IP`,
				`WorkloadEndpoint "ns1/b": no interfaceName, so no route`,
				`WorkloadEndpoint "ns1/c": address 10.65.0.5/32 is also used by WorkloadEndpoint "ns1/a", which keeps the route`,
			},
		},
		{
			name: "a workload prefix equal to a block keeps the device route",
			in: calc.Input{NodeName: "n1",
				Workloads:  []*v3.WorkloadEndpoint{wep("ns1", "a", "n1", "cali1", "10.65.0.0/26")},
				Affinities: []*v3.BlockAffinity{aff("n1", "10.65.0.0/26", v3.AffinityStateConfirmed), aff("n1", "garbage", v3.AffinityStateConfirmed)},
			},
			want: "route 10.65.0.0/26 dev cali1 scope link\niface cali1",
			problems: []string{
				`BlockAffinity "n1-garbage": cidr "garbage": netip.ParsePrefix("garbage"): no '/'`,
				`block 10.65.0.0/26: the prefix is also a workload address of WorkloadEndpoint "ns1/a", which keeps the route`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, problems := calc.Compute(tc.in)
			if got.String() != tc.want {
				t.Errorf("state:\n%s\nwant:\n%s", got, tc.want)
			}
			if strings.Join(problems, "\n") != strings.Join(tc.problems, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(tc.problems, "\n"))
			}
			// Input order must not matter.
			for range 5 {
				shuffled := tc.in
				shuffled.Workloads = append([]*v3.WorkloadEndpoint(nil), tc.in.Workloads...)
				shuffled.Affinities = append([]*v3.BlockAffinity(nil), tc.in.Affinities...)
				rand.Shuffle(len(shuffled.Workloads), func(i, j int) {
					shuffled.Workloads[i], shuffled.Workloads[j] = shuffled.Workloads[j], shuffled.Workloads[i]
				})
				rand.Shuffle(len(shuffled.Affinities), func(i, j int) {
					shuffled.Affinities[i], shuffled.Affinities[j] = shuffled.Affinities[j], shuffled.Affinities[i]
				})
				again, _ := calc.Compute(shuffled)
				if !again.Equal(got) {
					t.Fatalf("shuffled input gave another state:\n%s", again)
				}
			}
		})
	}
}

func TestComputedRoutesHaveTheirShapeAndSource(t *testing.T) {
	s, _ := calc.Compute(calc.Input{NodeName: "n1",
		Workloads:    []*v3.WorkloadEndpoint{wep("ns1", "a", "n1", "cali1", "10.65.0.5/32")},
		Affinities:   []*v3.BlockAffinity{aff("n1", "10.65.0.0/26", v3.AffinityStateConfirmed)},
		RemoteRoutes: map[netip.Prefix]netip.Addr{netip.MustParsePrefix("10.65.1.0/26"): netip.MustParseAddr("192.168.0.2"), netip.MustParsePrefix("10.65.4.4/32"): netip.MustParseAddr("192.168.0.2")},
	})
	want := map[string]dataplane.Route{
		"10.65.0.5/32": {Dst: netip.MustParsePrefix("10.65.0.5/32"), Iface: "cali1", Scope: dataplane.ScopeLink, Source: dataplane.SourceLocalWorkload},
		"10.65.0.0/26": {Dst: netip.MustParsePrefix("10.65.0.0/26"), Type: dataplane.Blackhole, Source: dataplane.SourceLocalBlock},
		"10.65.1.0/26": {Dst: netip.MustParsePrefix("10.65.1.0/26"), Gateway: netip.MustParseAddr("192.168.0.2"), Source: dataplane.SourceRemoteBlock},
		"10.65.4.4/32": {Dst: netip.MustParsePrefix("10.65.4.4/32"), Gateway: netip.MustParseAddr("192.168.0.2"), Source: dataplane.SourceRemoteWorkload},
	}
	if len(s.Routes) != len(want) {
		t.Fatalf("routes:\n%s", s)
	}
	for dst, w := range want {
		if got := s.Routes[netip.MustParsePrefix(dst)]; got != w {
			t.Errorf("%s: %+v, want %+v", dst, got, w)
		}
	}
}
