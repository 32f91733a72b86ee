package felix_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
	"github.com/tabbynet/tabby/felix"
	"github.com/tabbynet/tabby/felix/dataplane"
	"github.com/tabbynet/tabby/internal/testutil"
)

// kernelNode is a Felix on a real kernel: a fresh network namespace.
type kernelNode struct {
	f    *felix.Felix
	ns   ns.NetNS
	name string
	h    *netlink.Handle
	log  *logRecorder
}

func newKernelNode(t *testing.T, ds datastore.Interface, cfg felix.Config, veths ...string) *kernelNode {
	t.Helper()
	testutil.RequirePrivileged(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("privileged tests read the kernel with iproute2's ip: %v", err)
	}
	n := testutil.NewNetNS(t, "tabby-felix")
	h, err := netlink.NewHandleAt(netns.NsHandle(n.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	node := &kernelNode{ns: n, name: filepath.Base(n.Path()), h: h}
	for _, v := range veths {
		node.addVeth(t, v)
	}
	log, rec := newLog(t)
	node.log = rec
	cfg.Dataplane = dataplane.NewReconciler(h, dataplane.ProcSys{NetNS: n}, log)
	node.f = felix.New(cfg, ds, "n1", log)
	return node
}

func (n *kernelNode) addVeth(t *testing.T, name string) {
	t.Helper()
	peer := "p" + strings.TrimPrefix(name, "cali")
	if err := n.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}); err != nil {
		t.Fatalf("add veth %s: %v", name, err)
	}
	for _, l := range []string{name, peer} {
		link, err := n.h.LinkByName(l)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.h.LinkSetUp(link); err != nil {
			t.Fatal(err)
		}
	}
}

func (n *kernelNode) ip(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", n.name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	return lines
}

func (n *kernelNode) sysctl(t *testing.T, name string) string {
	t.Helper()
	var v string
	if err := n.ns.Do(func(ns.NetNS) error {
		b, err := os.ReadFile("/proc/sys/" + name)
		v = strings.TrimSpace(string(b))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

func (n *kernelNode) waitRoutes(t *testing.T, what string, want ...string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	eventually(t, what, func() (bool, string) {
		got := n.ip(t, "route", "show")
		return slices.Equal(got, want), strings.Join(got, "\n")
	})
}

func TestKernelFelixFollowsDatastoreAndRepairsDrift(t *testing.T) {
	testutil.RequirePrivileged(t) // before starting etcd
	ds := etcdtest.NewStore(t)
	create(t, ds, wep("ns1", "a", "n1", "c1", "cali123", "10.65.0.5/32"))
	create(t, ds, wep("ns1", "remote", "n2", "c9", "cali999", "10.65.1.5/32"))
	create(t, ds, affinity("n1", "10.65.0.0/26"))
	n := newKernelNode(t, ds, felix.Config{RouteRefreshInterval: 100 * time.Millisecond}, "cali123", "cali456", "host0")
	n.ip(t, "addr", "add", "192.168.0.1/24", "dev", "host0")
	n.ip(t, "route", "add", "172.16.0.0/24", "via", "192.168.0.254", "proto", "static")
	n.ip(t, "route", "add", "10.65.0.99", "dev", "cali123", "proto", "static")
	foreign := []string{
		"10.65.0.99 dev cali123 proto static scope link",
		"172.16.0.0/24 via 192.168.0.254 dev host0 proto static",
		"192.168.0.0/24 dev host0 proto kernel scope link src 192.168.0.1",
	}
	runFelix(t, n.f)

	n.waitRoutes(t, "routes from the datastore", append(slices.Clone(foreign),
		"10.65.0.5 dev cali123 proto 98 scope link",
		"blackhole 10.65.0.0/26 proto 98")...)
	for name, want := range map[string]string{
		"net/ipv4/ip_forward":                  "1",
		"net/ipv4/conf/cali123/proxy_arp":      "1",
		"net/ipv4/neigh/cali123/proxy_delay":   "0",
		"net/ipv4/conf/cali123/forwarding":     "1",
		"net/ipv4/conf/cali123/route_localnet": "1",
		"net/ipv6/conf/cali123/proxy_ndp":      "1",
		"net/ipv6/conf/cali123/forwarding":     "1",
		"net/ipv6/conf/cali123/accept_ra":      "0",
		"net/ipv4/conf/cali456/proxy_arp":      "0", // no endpoint on it
	} {
		if got := n.sysctl(t, name); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}

	b := create(t, ds, wep("ns1", "b", "n1", "c2", "cali456", "10.65.0.6/32"))
	n.waitRoutes(t, "a new endpoint", append(slices.Clone(foreign),
		"10.65.0.5 dev cali123 proto 98 scope link",
		"10.65.0.6 dev cali456 proto 98 scope link",
		"blackhole 10.65.0.0/26 proto 98")...)

	// Drift behind the loop's back: our route deleted with netlink. No
	// datastore event follows; the periodic resync puts it back.
	link, err := n.h.LinkByName("cali123")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.h.RouteDel(&netlink.Route{
		Dst:       &net.IPNet{IP: net.IPv4(10, 65, 0, 5).To4(), Mask: net.CIDRMask(32, 32)},
		LinkIndex: link.Attrs().Index, Scope: netlink.SCOPE_LINK, Protocol: dataplane.RouteProtocol,
	}); err != nil {
		t.Fatalf("delete our route behind felix's back: %v", err)
	}
	n.waitRoutes(t, "drift repaired by the resync", append(slices.Clone(foreign),
		"10.65.0.5 dev cali123 proto 98 scope link",
		"10.65.0.6 dev cali456 proto 98 scope link",
		"blackhole 10.65.0.0/26 proto 98")...)

	del(t, ds, b)
	del(t, ds, affinity("n1", "10.65.0.0/26"))
	n.waitRoutes(t, "after deletes; foreign routes intact", append(slices.Clone(foreign),
		"10.65.0.5 dev cali123 proto 98 scope link")...)
}

func TestKernelFelixWritesNothingBeforeInSync(t *testing.T) {
	testutil.RequirePrivileged(t) // before starting etcd
	n := newKernelNode(t, unreachableStore(t), felix.Config{RouteRefreshInterval: 50 * time.Millisecond}, "cali123")
	n.ip(t, "route", "add", "10.65.0.77", "dev", "cali123", "proto", "98") // stale: would be pruned
	n.ip(t, "route", "add", "10.65.0.99", "dev", "cali123", "proto", "static")
	routesBefore := n.ip(t, "route", "show")
	forwardBefore := n.sysctl(t, "net/ipv4/ip_forward")
	runFelix(t, n.f)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := n.f.UpsertWorkload(ctx, wep("ns1", "a", "n1", "c1", "cali123", "10.65.0.5/32"))
	if !errors.Is(err, felix.ErrNotInSync) {
		t.Fatalf("upsert with the datastore unreachable: %v, want ErrNotInSync", err)
	}
	// The loop has run (kicked by the upsert and by resync ticks) and
	// decided not to write.
	n.log.waitMessage(t, "datastore not in sync yet")
	if got := n.ip(t, "route", "show"); !slices.Equal(got, routesBefore) {
		t.Errorf("routes changed before in-sync:\n%s\nwas:\n%s", strings.Join(got, "\n"), strings.Join(routesBefore, "\n"))
	}
	if got := n.sysctl(t, "net/ipv4/conf/cali123/proxy_arp"); got != "0" {
		t.Errorf("proxy_arp written before in-sync: %s", got)
	}
	if got := n.sysctl(t, "net/ipv4/ip_forward"); got != forwardBefore {
		t.Errorf("ip_forward written before in-sync: %s (was %s)", got, forwardBefore)
	}
}

func TestKernelUpsertWorkloadReturnsAfterRouteIsInKernel(t *testing.T) {
	testutil.RequirePrivileged(t) // before starting etcd
	ds := etcdtest.NewStore(t)
	n := newKernelNode(t, ds, felix.Config{}, "cali123")
	runFelix(t, n.f)
	waitInSync(t, n.f)
	ctx := context.Background()

	a := wep("ns1", "a", "n1", "c1", "cali123", "10.65.0.5/32", "fd00:65::5/128")
	if err := n.f.UpsertWorkload(ctx, a); err != nil {
		t.Fatalf("upsert: %v", err)
	}
	// Read the kernel at once: no polling.
	if got := n.ip(t, "route", "show"); !slices.Equal(got, []string{"10.65.0.5 dev cali123 proto 98 scope link"}) {
		t.Errorf("ip route right after upsert: %q", got)
	}
	if got := n.ip(t, "-6", "route", "show", "proto", "98"); !slices.Equal(got, []string{"fd00:65::5 dev cali123 metric 1024 pref medium"}) {
		t.Errorf("ip -6 route right after upsert: %q", got)
	}
	if got := n.sysctl(t, "net/ipv4/conf/cali123/proxy_arp"); got != "1" {
		t.Errorf("proxy_arp right after upsert: %s", got)
	}
	if p := n.f.CheckWorkload(a); len(p) > 0 {
		t.Errorf("check: %q", p)
	}
	if err := n.f.RemoveWorkload(ctx, v3.KeyOf(a)); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if got := n.ip(t, "route", "show"); len(got) != 0 {
		t.Errorf("ip route right after remove: %q", got)
	}
	if p := n.f.CheckWorkload(a); len(p) != 2 {
		t.Errorf("check after remove: %q, want both routes missing", p)
	}
}
