package controller

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
)

func testNode(name string, addrs ...string) *v3.Node {
	n := &v3.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v3.NodeSpec{BGP: &v3.NodeBGPSpec{}}}
	for _, a := range addrs {
		if strings.Contains(a, ":") {
			n.Spec.BGP.IPv6Address = a
		} else {
			n.Spec.BGP.IPv4Address = a
		}
	}
	return n
}

func testPool(name, cidr string, mut ...func(*v3.IPPoolSpec)) *v3.IPPool {
	p := &v3.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v3.IPPoolSpec{CIDR: cidr}}
	for _, m := range mut {
		m(&p.Spec)
	}
	return p
}

func affinity(node, cidr string, state v3.BlockAffinityState) *v3.BlockAffinity {
	return &v3.BlockAffinity{
		ObjectMeta: metav1.ObjectMeta{Name: node + "-" + strings.NewReplacer(".", "-", "/", "-", ":", "-").Replace(cidr)},
		Spec:       v3.BlockAffinitySpec{Node: node, CIDR: cidr, State: state, Type: "host"},
	}
}

func wep(node, name string, ips ...string) *v3.WorkloadEndpoint {
	return &v3.WorkloadEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       v3.WorkloadEndpointSpec{Node: node, IPNetworks: ips, InterfaceName: "cali0123456789a"},
	}
}

func TestComputeAdvertisements(t *testing.T) {
	in := Input{
		NodeName: "n1",
		Nodes:    []*v3.Node{testNode("n1", "192.168.0.1/24", "fd00::1/64"), testNode("n2", "192.168.0.2/24")},
		Pools: []*v3.IPPool{
			testPool("v4", "10.65.0.0/16"),
			testPool("v6", "fd10::/48"),
			testPool("quiet", "10.66.0.0/16", func(s *v3.IPPoolSpec) { s.DisableBGPExport = true }),
			testPool("off", "10.67.0.0/16", func(s *v3.IPPoolSpec) { s.Disabled = true }),
		},
		Affinities: []*v3.BlockAffinity{
			affinity("n1", "10.65.1.0/26", v3.AffinityStateConfirmed),
			affinity("n1", "10.65.1.64/26", v3.AffinityStatePending),          // may still lose the race
			affinity("n1", "10.65.1.128/26", v3.AffinityStatePendingDeletion), // being released
			affinity("n1", "fd10::100/122", v3.AffinityStateConfirmed),
			affinity("n1", "10.66.0.0/26", v3.AffinityStateConfirmed), // pool with disableBGPExport
			affinity("n2", "10.65.2.0/26", v3.AffinityStateConfirmed), // another node's
		},
		Workloads: []*v3.WorkloadEndpoint{
			wep("n1", "in-block", "10.65.1.5/32"),
			wep("n1", "borrowed", "10.65.2.9/32", "fd10::200"),
			wep("n1", "outside-pools", "172.16.0.9/32"),
			wep("n1", "disabled-pool", "10.67.0.3/32"),
			wep("n2", "elsewhere", "10.65.9.9/32"),
		},
	}
	d, err := Compute(in)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range d.Advertisements {
		got = append(got, fmt.Sprintf("%s via %s", a.Prefix, a.NextHop))
	}
	want := []string{
		"10.65.1.0/26 via 192.168.0.1",
		"10.65.2.9/32 via 192.168.0.1",
		"fd10::100/122 via fd00::1",
		"fd10::200/128 via fd00::1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("advertisements (-want +got):\n%s", diff)
	}
	wantPools := []netip.Prefix{
		netip.MustParsePrefix("10.65.0.0/16"), netip.MustParsePrefix("10.66.0.0/16"),
		netip.MustParsePrefix("10.67.0.0/16"), netip.MustParsePrefix("fd10::/48"),
	}
	if diff := cmp.Diff(wantPools, d.Policy.Pools, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("policy pools (-want +got):\n%s", diff)
	}
	wantOwn := []netip.Prefix{
		netip.MustParsePrefix("10.65.1.0/26"), netip.MustParsePrefix("10.66.0.0/26"), netip.MustParsePrefix("fd10::100/122"),
	}
	if diff := cmp.Diff(wantOwn, d.Policy.OwnBlocks, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("own blocks (-want +got):\n%s", diff)
	}
	if len(d.Peers) != 1 || d.Peers[0].Address != netip.MustParseAddr("192.168.0.2") {
		t.Errorf("peers = %+v", d.Peers)
	}
}

// A node without an IPv6 address advertises no IPv6 prefix (it would have
// no next hop for it).
func TestComputeNoNextHopNoAdvertisement(t *testing.T) {
	d, err := Compute(Input{
		NodeName:   "n1",
		Nodes:      []*v3.Node{testNode("n1", "192.168.0.1/24")},
		Pools:      []*v3.IPPool{testPool("v6", "fd10::/48")},
		Affinities: []*v3.BlockAffinity{affinity("n1", "fd10::100/122", v3.AffinityStateConfirmed)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Advertisements) != 0 {
		t.Fatalf("advertisements = %+v", d.Advertisements)
	}
}
