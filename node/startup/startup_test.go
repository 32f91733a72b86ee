package startup

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
	"github.com/tabbynet/tabby/node/autodetect"
	"github.com/tabbynet/tabby/node/config"
)

// fakeHost is the autodetect seam: a host with fixed interfaces.
type fakeHost []autodetect.Interface

func (f fakeHost) Interfaces() ([]autodetect.Interface, error) { return f, nil }
func (f fakeHost) SourceAddr(dest string, _ int) (netip.Addr, error) {
	if dest == "10.0.0.1" {
		return netip.MustParseAddr("10.0.0.5"), nil
	}
	return netip.Addr{}, errors.New("connect: network is unreachable")
}

var testHost = fakeHost{
	{Name: "lo", Index: 1, MTU: 65536, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
	{Name: "eth0", Index: 2, MTU: 1500, Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/24"), netip.MustParsePrefix("fd00:1::5/64")}},
	{Name: "eth1", Index: 3, MTU: 9000, Addrs: []netip.Prefix{netip.MustParsePrefix("172.20.0.9/16")}},
	{Name: "docker0", Index: 4, MTU: 1500, Addrs: []netip.Prefix{netip.MustParsePrefix("172.17.0.1/16")}},
}

func run(t *testing.T, ds datastore.Interface, kv ...string) (Result, error) {
	t.Helper()
	m := map[string]string{"NODENAME": "node-a", "TABBY_NODENAME_FILE": "none"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	cfg, err := config.FromEnv(func(k string) string { return m[k] }, os.Hostname)
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return Run(ctx, ds, cfg, testHost, etcdtest.Logger(t))
}

func getNode(t *testing.T, ds datastore.Interface, name string) *v3.Node {
	t.Helper()
	r, err := ds.Get(context.Background(), v3.Key{Kind: "Node", Name: name})
	if err != nil {
		t.Fatalf("get node %s: %v", name, err)
	}
	return r.(*v3.Node)
}

func pools(t *testing.T, ds datastore.Interface) map[string]*v3.IPPool {
	t.Helper()
	l, err := ds.List(context.Background(), "IPPool", "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*v3.IPPool{}
	for _, r := range l.Items {
		out[r.GetName()] = r.(*v3.IPPool)
	}
	return out
}

func TestGoodEnvironments(t *testing.T) {
	for _, tc := range []struct {
		name   string
		env    []string
		v4, v6 string
		as     string // "" for none
		mtu    int
		pools  map[string]string
	}{
		{
			name:  "defaults autodetect first-found and create Calico's default pool",
			v4:    "172.20.0.9/16", // eth1 has the higher index
			mtu:   9000,
			pools: map[string]string{"default-ipv4-ippool": "192.168.0.0/16 block=26 ipip=Never vxlan=Never nat=true sel=all()"},
		},
		{
			name:  "explicit address with prefix and AS",
			env:   []string{"IP", "10.0.0.5/24", "AS", "64513"},
			v4:    "10.0.0.5/24",
			as:    "64513",
			mtu:   1500,
			pools: map[string]string{"default-ipv4-ippool": "192.168.0.0/16 block=26 ipip=Never vxlan=Never nat=true sel=all()"},
		},
		{
			name:  "explicit address without prefix takes the interface's",
			env:   []string{"IP", "10.0.0.5", "CALICO_IPV4POOL_CIDR", "none"},
			v4:    "10.0.0.5/24",
			mtu:   1500,
			pools: map[string]string{},
		},
		{
			name:  "explicit address not on this host is stored as /32",
			env:   []string{"IP", "192.0.2.7", "NO_DEFAULT_POOLS", "true"},
			v4:    "192.0.2.7/32",
			mtu:   1500, // no interface: the default
			pools: map[string]string{},
		},
		{
			name: "every pool variable",
			env: []string{"IP_AUTODETECTION_METHOD", "interface=eth0", "CALICO_IPV4POOL_CIDR", "10.244.0.0/16", "CALICO_IPV4POOL_BLOCK_SIZE", "24",
				"CALICO_IPV4POOL_IPIP", "always", "CALICO_IPV4POOL_NAT_OUTGOING", "false", "CALICO_IPV4POOL_NODE_SELECTOR", "has(rack)",
				"CALICO_IPV6POOL_CIDR", "fd00:244::/48", "CALICO_IPV6POOL_VXLAN", "CrossSubnet", "CALICO_IPV6POOL_BLOCK_SIZE", "120"},
			v4:  "10.0.0.5/24",
			mtu: 1430, // IPv6 VXLAN is the largest overhead
			pools: map[string]string{
				"default-ipv4-ippool": "10.244.0.0/16 block=24 ipip=Always vxlan=Never nat=false sel=has(rack)",
				"default-ipv6-ippool": "fd00:244::/48 block=120 ipip=Never vxlan=CrossSubnet nat=false sel=all()",
			},
		},
		{
			name:  "IPv6 autodetect, can-reach for IPv4",
			env:   []string{"IP_AUTODETECTION_METHOD", "can-reach=10.0.0.1", "IP6", "autodetect", "NO_DEFAULT_POOLS", "true"},
			v4:    "10.0.0.5/24",
			v6:    "fd00:1::5/64",
			mtu:   1500,
			pools: map[string]string{},
		},
		{
			// cidr= applies no exclusions, as in Calico: docker0 is found.
			name:  "cidr",
			env:   []string{"IP_AUTODETECTION_METHOD", "cidr=172.16.0.0/12", "NO_DEFAULT_POOLS", "true"},
			v4:    "172.17.0.1/16",
			mtu:   1500,
			pools: map[string]string{},
		},
		{
			name:  "skip-interface",
			env:   []string{"IP_AUTODETECTION_METHOD", "skip-interface=eth1", "NO_DEFAULT_POOLS", "true"},
			v4:    "10.0.0.5/24",
			mtu:   1500,
			pools: map[string]string{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := etcdtest.NewStore(t)
			res, err := run(t, ds, tc.env...)
			if err != nil {
				t.Fatal(err)
			}
			n := getNode(t, ds, "node-a")
			if n.Spec.BGP == nil || n.Spec.BGP.IPv4Address != tc.v4 || n.Spec.BGP.IPv6Address != tc.v6 {
				t.Errorf("node bgp %+v, want ipv4 %q ipv6 %q", n.Spec.BGP, tc.v4, tc.v6)
			}
			as := ""
			if n.Spec.BGP != nil && n.Spec.BGP.ASNumber != nil {
				as = n.Spec.BGP.ASNumber.String()
			}
			if as != tc.as {
				t.Errorf("asNumber %q, want %q", as, tc.as)
			}
			if res.IPv4 == nil || res.IPv4.Prefix.String() != tc.v4 {
				t.Errorf("result IPv4 %+v", res.IPv4)
			}
			if res.MTU != tc.mtu {
				t.Errorf("pod MTU %d, want %d", res.MTU, tc.mtu)
			}
			got := pools(t, ds)
			if len(got) != len(tc.pools) {
				t.Errorf("pools %v, want %v", got, tc.pools)
			}
			for name, want := range tc.pools {
				p, ok := got[name]
				if !ok {
					t.Errorf("pool %s missing", name)
					continue
				}
				s := p.Spec
				desc := s.CIDR + " block=" + strconv.Itoa(s.BlockSize) + " ipip=" + string(s.IPIPMode) + " vxlan=" + string(s.VXLANMode) +
					" nat=" + map[bool]string{true: "true", false: "false"}[s.NATOutgoing] + " sel=" + s.NodeSelector
				if desc != want {
					t.Errorf("pool %s: %s, want %s", name, desc, want)
				}
			}
		})
	}
}

// Errors found while starting are refused with what to change, and leave
// nothing half-written behind.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"no interface matches", []string{"IP_AUTODETECTION_METHOD", "interface=eth9"}, "IP_AUTODETECTION_METHOD=interface=eth9: no interface matches"},
		{"interface without address", []string{"IP_AUTODETECTION_METHOD", "interface=lo"}, "IP_AUTODETECTION_METHOD=interface=lo: matching interfaces (lo) have no global IPv4 address"},
		{"cidr matches nothing", []string{"IP_AUTODETECTION_METHOD", "cidr=10.9.0.0/16"}, "IP_AUTODETECTION_METHOD=cidr=10.9.0.0/16: no interface has a global IPv4 address in 10.9.0.0/16"},
		{"unreachable", []string{"IP_AUTODETECTION_METHOD", "can-reach=192.0.2.1"}, "IP_AUTODETECTION_METHOD=can-reach=192.0.2.1: cannot reach 192.0.2.1 over IPv4: connect: network is unreachable"},
		{"IPv6 autodetect finds nothing", []string{"IP6", "autodetect", "IP6_AUTODETECTION_METHOD", "interface=eth1"}, "IP6_AUTODETECTION_METHOD=interface=eth1: matching interfaces (eth1) have no global IPv6 address"},
		{"no address at all", []string{"IP", "none"}, "no IPv4 or IPv6 address configured or detected for this node, and BGP needs one"},
		// Bad values are refused before anything is read or written.
		{"bad IP", []string{"IP", "10.0.0.300"}, "IP=10.0.0.300: not an IPv4 address or address/prefix-length (or autodetect, none)"},
		{"bad method", []string{"IP_AUTODETECTION_METHOD", "interfaces=eth0"}, "IP_AUTODETECTION_METHOD=interfaces=eth0: unknown autodetection method"},
		{"bad AS", []string{"AS", "abc"}, `AS=abc: "abc" is not a valid AS number`},
		{"bad block size", []string{"CALICO_IPV4POOL_BLOCK_SIZE", "19"}, "CALICO_IPV4POOL_BLOCK_SIZE=19: out of range: an IPv4 block size is 20-32"},
		{"bad IPIP", []string{"CALICO_IPV4POOL_IPIP", "sometimes"}, "CALICO_IPV4POOL_IPIP=sometimes: not an encapsulation mode: use Always, CrossSubnet or Never"},
		{"bad VXLAN", []string{"CALICO_IPV4POOL_VXLAN", "yes"}, "CALICO_IPV4POOL_VXLAN=yes: not an encapsulation mode"},
		{"bad NAT", []string{"CALICO_IPV4POOL_NAT_OUTGOING", "maybe"}, "CALICO_IPV4POOL_NAT_OUTGOING=maybe: not a boolean: use true or false"},
		{"bad pool CIDR", []string{"CALICO_IPV4POOL_CIDR", "10.0.0.0/33"}, "CALICO_IPV4POOL_CIDR=10.0.0.0/33: not an IPv4 CIDR"},
		{"pools contradict", []string{"NO_DEFAULT_POOLS", "true", "CALICO_IPV4POOL_CIDR", "10.0.0.0/16"}, "CALICO_IPV4POOL_CIDR=10.0.0.0/16: contradicts NO_DEFAULT_POOLS=true"},
		{"bad datastore", []string{"DATASTORE_TYPE", "zookeeper"}, `datastore configuration from the environment: datastore type "zookeeper" is not known`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := etcdtest.NewStore(t)
			_, err := run(t, ds, tc.env...)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant an error starting %q", err, tc.want)
			}
			if _, err := ds.Get(context.Background(), v3.Key{Kind: "Node", Name: "node-a"}); !datastore.IsNotFound(err) {
				t.Errorf("a refused start registered the node (%v)", err)
			}
			if p := pools(t, ds); len(p) != 0 {
				t.Errorf("a refused start created pools %v", p)
			}
		})
	}
}

func TestAddressConflict(t *testing.T) {
	ds := etcdtest.NewStore(t)
	if _, err := run(t, ds, "NODENAME", "node-old", "IP", "10.0.0.5/24"); err != nil {
		t.Fatal(err)
	}
	_, err := run(t, ds, "IP_AUTODETECTION_METHOD", "interface=eth0")
	want := `node "node-old" already uses the IPv4 address 10.0.0.5 (autodetected with IP_AUTODETECTION_METHOD=interface=eth0): give this node another address with IP or IP_AUTODETECTION_METHOD, or delete node "node-old" if that host is gone (DISABLE_NODE_IP_CHECK=true skips this check)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if _, err := ds.Get(context.Background(), v3.Key{Kind: "Node", Name: "node-a"}); !datastore.IsNotFound(err) {
		t.Errorf("conflicting node was registered (%v)", err)
	}
	_, err = run(t, ds, "IP", "10.0.0.5/24")
	if err == nil || !strings.HasPrefix(err.Error(), `node "node-old" already uses the IPv4 address 10.0.0.5 (IP=10.0.0.5/24)`) {
		t.Fatalf("static address conflict: %v", err)
	}
	if _, err := run(t, ds, "IP", "10.0.0.5/24", "DISABLE_NODE_IP_CHECK", "true"); err != nil {
		t.Fatalf("DISABLE_NODE_IP_CHECK=true: %v", err)
	}
	// The node's own earlier registration is not a conflict.
	if _, err := run(t, ds, "NODENAME", "node-old", "IP", "10.0.0.5/24"); err != nil {
		t.Fatalf("restart of node-old: %v", err)
	}
}

func TestRestartKeepsAndUpdates(t *testing.T) {
	ds := etcdtest.NewStore(t)
	nameFile := filepath.Join(t.TempDir(), "lib", "nodename")
	if _, err := run(t, ds, "IP", "10.0.0.5/24", "AS", "64600", "TABBY_NODENAME_FILE", nameFile, "CALICO_K8S_NODE_REF", "k8s-node-a"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(nameFile); err != nil || string(b) != "node-a" {
		t.Errorf("node name file: %q, %v", b, err)
	}
	first := getNode(t, ds, "node-a")
	if len(first.Spec.OrchRefs) != 1 || first.Spec.OrchRefs[0].NodeName != "k8s-node-a" || first.Spec.OrchRefs[0].Orchestrator != "k8s" {
		t.Errorf("orchRefs %+v", first.Spec.OrchRefs)
	}
	// Someone sets a field calico-node does not own; it must survive.
	first.Spec.BGP.RouteReflectorClusterID = "224.0.0.1"
	if _, err := ds.Update(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	before := getNode(t, ds, "node-a")

	// IP unset with an address already stored: keep it; AS unset: keep it.
	// Nothing changes, so nothing is written.
	if _, err := run(t, ds, "CALICO_K8S_NODE_REF", "k8s-node-a"); err != nil {
		t.Fatal(err)
	}
	n := getNode(t, ds, "node-a")
	if n.ResourceVersion != before.ResourceVersion {
		t.Errorf("an unchanged restart rewrote the node (%s -> %s)", before.ResourceVersion, n.ResourceVersion)
	}
	// IP unset but an explicit method: the method is used, and a method
	// that finds nothing is refused rather than the stored address kept.
	if _, err := run(t, ds, "IP_AUTODETECTION_METHOD", "interface=eth9"); err == nil || err.Error() != "IP_AUTODETECTION_METHOD=interface=eth9: no interface matches" {
		t.Fatalf("explicit method on a registered node: %v", err)
	}
	if n := getNode(t, ds, "node-a"); n.Spec.BGP.IPv4Address != "10.0.0.5/24" {
		t.Fatalf("a refused start changed the address to %q", n.Spec.BGP.IPv4Address)
	}
	// A new AS and autodetected address are written; other fields stay.
	if _, err := run(t, ds, "IP", "autodetect", "IP_AUTODETECTION_METHOD", "interface=eth1", "AS", "64601"); err != nil {
		t.Fatal(err)
	}
	n = getNode(t, ds, "node-a")
	if n.Spec.BGP.IPv4Address != "172.20.0.9/16" || n.Spec.BGP.ASNumber == nil || *n.Spec.BGP.ASNumber != 64601 || n.Spec.BGP.RouteReflectorClusterID != "224.0.0.1" {
		t.Errorf("updated node bgp %+v", n.Spec.BGP)
	}
	if n.UID != first.UID {
		t.Errorf("update replaced the node (uid %s -> %s)", first.UID, n.UID)
	}
}

func TestExistingPoolsAreLeftAlone(t *testing.T) {
	ds := etcdtest.NewStore(t)
	r, _ := v3.NewResource("IPPool")
	p := r.(*v3.IPPool)
	p.ObjectMeta = metav1.ObjectMeta{Name: "mine"}
	p.Spec = v3.IPPoolSpec{CIDR: "10.50.0.0/16"}
	v3.SetDefaults(p)
	if _, err := ds.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	res, err := run(t, ds, "IP", "10.0.0.5/24", "CALICO_IPV4POOL_CIDR", "10.244.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	if got := pools(t, ds); len(got) != 1 || got["mine"] == nil || len(res.CreatedPools) != 0 {
		t.Errorf("pools %v, created %v; want only the existing one", got, res.CreatedPools)
	}
}

// CALICO_NETWORKING_BACKEND=none (policy only) needs no node address.
func TestPolicyOnlyNeedsNoAddress(t *testing.T) {
	ds := etcdtest.NewStore(t)
	res, err := run(t, ds, "CALICO_NETWORKING_BACKEND", "none", "IP", "none", "NO_DEFAULT_POOLS", "true")
	if err != nil {
		t.Fatal(err)
	}
	if n := getNode(t, ds, "node-a"); n.Spec.BGP != nil || res.IPv4 != nil {
		t.Errorf("policy-only node has BGP settings %+v", n.Spec.BGP)
	}
}
