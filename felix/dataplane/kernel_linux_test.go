package dataplane_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/tabbynet/tabby/felix/dataplane"
	"github.com/tabbynet/tabby/internal/testutil"
)

// netNS is one test's namespace: a netlink handle in it and its name for `ip -n`.
type netNS struct {
	ns   ns.NetNS
	name string
	h    *netlink.Handle
}

func newNetNS(t testing.TB) *netNS {
	t.Helper()
	testutil.RequirePrivileged(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("privileged tests read the kernel with iproute2's ip: %v", err)
	}
	n := testutil.NewNetNS(t, "tabby-felix")
	h, err := netlink.NewHandleAt(netns.NsHandle(n.Fd()))
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", n.Path(), err)
	}
	t.Cleanup(h.Close)
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return &netNS{ns: n, name: filepath.Base(n.Path()), h: h}
}

func (n *netNS) reconciler(t testing.TB) *dataplane.Reconciler {
	return dataplane.NewReconciler(n.h, dataplane.ProcSys{NetNS: n.ns}, testLogger(t))
}

// addVeth creates a veth pair, both ends up (so routes carry no "linkdown"):
// name is the host side (cali...), the peer stands in for the pod's eth0.
func (n *netNS) addVeth(t testing.TB, name string) *netlink.Veth {
	t.Helper()
	peer := "p" + strings.TrimPrefix(name, "cali")
	if len(peer) > 15 {
		peer = peer[:15]
	}
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}
	if err := n.h.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s: %v", name, err)
	}
	for _, l := range []string{name, peer} {
		link, err := n.h.LinkByName(l)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.h.LinkSetUp(link); err != nil {
			t.Fatalf("set %s up: %v", l, err)
		}
	}
	link, err := n.h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return link.(*netlink.Veth)
}

// addUplink makes "host0" with 192.168.0.1/24, this namespace's stand-in for
// the node's NIC, so there is a connected route for gateways.
func (n *netNS) addUplink(t testing.TB) {
	t.Helper()
	n.addVeth(t, "host0")
	link, _ := n.h.LinkByName("host0")
	addr, _ := netlink.ParseAddr("192.168.0.1/24")
	if err := n.h.AddrAdd(link, addr); err != nil {
		t.Fatal(err)
	}
}

// ip runs iproute2 in the namespace and returns its output lines.
func (n *netNS) ip(t testing.TB, args ...string) []string {
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
	return lines
}

// sysctl reads /proc/sys inside the namespace, independently of ProcSys.
func (n *netNS) sysctl(t testing.TB, name string) string {
	t.Helper()
	var v string
	err := n.ns.Do(func(ns.NetNS) error {
		b, err := os.ReadFile("/proc/sys/" + name)
		v = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return v
}

func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(g, w) {
		t.Errorf("%s:\n--- got\n%s\n--- want\n%s", what, strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

func ours(lines []string) []string {
	return slices.DeleteFunc(slices.Clone(lines), func(l string) bool { return !strings.Contains(l, "proto 98") })
}

func TestKernelApply(t *testing.T) {
	n := newNetNS(t)
	n.addUplink(t)
	n.addVeth(t, "cali123")
	n.addVeth(t, "cali456")
	n.addVeth(t, "tun0") // no ipip here: a veth stands in for an onlink tunnel device
	r := n.reconciler(t)

	want := state(
		wl("10.65.0.5/32", "cali123"),
		wl("10.65.0.6/32", "cali456"),
		wl("fd00:65::5/128", "cali123"),
		bh("10.65.0.0/26"),
		bh("fd00:65::/122"),
		dataplane.Route{Dst: pfx("10.65.1.0/26"), Gateway: netip.MustParseAddr("192.168.0.2")},
		dataplane.Route{Dst: pfx("10.65.2.0/26"), Gateway: netip.MustParseAddr("172.16.0.3"), Iface: "tun0", OnLink: true, MTU: 1480},
	)
	want.IPv4Forwarding = true
	want.IPv6Forwarding = true
	mustApply(t, r, want)

	sameLines(t, "ip route", n.ip(t, "route", "show"), []string{
		"10.65.0.5 dev cali123 proto 98 scope link",
		"10.65.0.6 dev cali456 proto 98 scope link",
		"blackhole 10.65.0.0/26 proto 98",
		"10.65.1.0/26 via 192.168.0.2 dev host0 proto 98",
		"10.65.2.0/26 via 172.16.0.3 dev tun0 proto 98 onlink mtu 1480",
		"192.168.0.0/24 dev host0 proto kernel scope link src 192.168.0.1",
	})
	sameLines(t, "ip -6 route (ours)", ours(n.ip(t, "-6", "route", "show")), []string{
		"fd00:65::5 dev cali123 proto 98 metric 1024 pref medium",
		"blackhole fd00:65::/122 dev lo proto 98 metric 1024 pref medium",
	})

	for _, iface := range []string{"cali123", "cali456"} {
		for name, value := range map[string]string{
			"net/ipv4/conf/%s/proxy_arp":      "1",
			"net/ipv4/neigh/%s/proxy_delay":   "0",
			"net/ipv4/conf/%s/forwarding":     "1",
			"net/ipv4/conf/%s/route_localnet": "1",
			"net/ipv6/conf/%s/proxy_ndp":      "1",
			"net/ipv6/conf/%s/forwarding":     "1",
			"net/ipv6/conf/%s/accept_ra":      "0",
		} {
			if got := n.sysctl(t, fmt.Sprintf(name, iface)); got != value {
				t.Errorf("%s = %s, want %s", fmt.Sprintf(name, iface), got, value)
			}
		}
	}
	if got := n.sysctl(t, "net/ipv4/ip_forward"); got != "1" {
		t.Errorf("ip_forward = %s", got)
	}
	if got := n.sysctl(t, "net/ipv6/conf/all/forwarding"); got != "1" {
		t.Errorf("ipv6 forwarding = %s", got)
	}
	// The interface we did not list as a workload keeps its defaults.
	if got := n.sysctl(t, "net/ipv4/conf/tun0/proxy_arp"); got != "0" {
		t.Errorf("tun0 proxy_arp = %s: only workload interfaces get workload sysctls", got)
	}

	// Nothing left to do: Check is clean, and the same apply is a no-op.
	routes := slices.Collect(func(yield func(dataplane.Route) bool) {
		for _, r := range want.Routes {
			if !yield(r) {
				return
			}
		}
	})
	if problems, err := r.Check(routes); err != nil || len(problems) > 0 {
		t.Errorf("check after apply: %v %q", err, problems)
	}
	before := n.ip(t, "route", "show")
	mustApply(t, r, want)
	sameLines(t, "ip route after a second apply", n.ip(t, "route", "show"), before)

	// Change everything: .5 moves, .6 goes, the block goes, a route's MTU changes.
	next := state(
		wl("10.65.0.5/32", "cali456"),
		dataplane.Route{Dst: pfx("10.65.2.0/26"), Gateway: netip.MustParseAddr("172.16.0.3"), Iface: "tun0", OnLink: true},
	)
	mustApply(t, r, next)
	sameLines(t, "ip route after changes", ours(n.ip(t, "route", "show")), []string{
		"10.65.0.5 dev cali456 proto 98 scope link",
		"10.65.2.0/26 via 172.16.0.3 dev tun0 proto 98 onlink",
	})
	sameLines(t, "ip -6 route after changes (ours)", ours(n.ip(t, "-6", "route", "show")), nil)
}

func TestKernelForeignRoutesSurvive(t *testing.T) {
	n := newNetNS(t)
	n.addUplink(t)
	n.addVeth(t, "cali123")
	r := n.reconciler(t)

	foreign := [][]string{
		{"route", "add", "172.16.0.0/24", "via", "192.168.0.254", "proto", "static"},
		{"route", "add", "10.65.0.99", "dev", "cali123", "proto", "static"},
		{"route", "add", "10.65.0.5", "dev", "host0", "proto", "static", "metric", "100"},
		{"route", "add", "blackhole", "10.66.0.0/26", "proto", "bird"},
		{"-6", "route", "add", "fd00:99::/64", "dev", "host0", "proto", "static"},
	}
	for _, f := range foreign {
		n.ip(t, f...)
	}
	// A leftover of ours (a previous Tabby) that must be pruned.
	n.ip(t, "route", "add", "10.65.0.77", "dev", "cali123", "proto", "98")
	foreignV4 := slices.DeleteFunc(n.ip(t, "route", "show"), func(l string) bool { return strings.Contains(l, "proto 98") })
	foreignV6 := slices.DeleteFunc(n.ip(t, "-6", "route", "show"), func(l string) bool { return strings.Contains(l, "proto 98") })

	mustApply(t, r, state(wl("10.65.0.5/32", "cali123"), bh("10.65.0.0/26")))
	sameLines(t, "ip route", n.ip(t, "route", "show"), append(slices.Clone(foreignV4),
		"10.65.0.5 dev cali123 proto 98 scope link",
		"blackhole 10.65.0.0/26 proto 98",
	))
	mustApply(t, r, dataplane.NewState())
	sameLines(t, "ip route after pruning everything", n.ip(t, "route", "show"), foreignV4)
	sameLines(t, "ip -6 route after pruning everything", n.ip(t, "-6", "route", "show"), foreignV6)
}

func TestKernelConflictLeavesForeignRoute(t *testing.T) {
	n := newNetNS(t)
	n.addUplink(t)
	n.addVeth(t, "cali123")
	n.addVeth(t, "cali456")
	r := n.reconciler(t)
	n.ip(t, "route", "add", "10.65.0.5", "dev", "host0", "proto", "static")

	reached, err := r.Apply(state(wl("10.65.0.5/32", "cali123"), wl("10.65.0.6/32", "cali456")))
	if !errors.Is(err, dataplane.ErrConflict) || dataplane.RouteFailure(err, pfx("10.65.0.5/32")) == nil {
		t.Fatalf("apply: %v, want a conflict on 10.65.0.5/32", err)
	}
	if _, ok := reached.Routes[pfx("10.65.0.6/32")]; !ok {
		t.Errorf("the other route was not reached: %s", reached)
	}
	sameLines(t, "ip route", n.ip(t, "route", "show"), []string{
		"10.65.0.5 dev host0 proto static scope link",
		"10.65.0.6 dev cali456 proto 98 scope link",
		"192.168.0.0/24 dev host0 proto kernel scope link src 192.168.0.1",
	})
}

func TestKernelMissingAndRecreatedVeth(t *testing.T) {
	n := newNetNS(t)
	r := n.reconciler(t)
	want := state(wl("10.65.0.5/32", "cali123"))

	// The CNI plugin has not created the veth yet.
	reached, err := r.Apply(want)
	if !errors.Is(err, dataplane.ErrNoInterface) || len(reached.Routes) != 0 {
		t.Fatalf("apply before the veth exists: %v, reached %s", err, reached)
	}
	n.addVeth(t, "cali123")
	mustApply(t, r, want)
	if got := n.sysctl(t, "net/ipv4/conf/cali123/proxy_arp"); got != "1" {
		t.Fatalf("proxy_arp = %s", got)
	}

	// The pod is re-created: same name, new veth, which comes without our
	// route (the kernel dropped it with the old device) and without sysctls.
	link, _ := n.h.LinkByName("cali123")
	if err := n.h.LinkDel(link); err != nil {
		t.Fatal(err)
	}
	n.addVeth(t, "cali123")
	if got := n.sysctl(t, "net/ipv4/conf/cali123/proxy_arp"); got != "0" {
		t.Fatalf("a new veth has proxy_arp = %s", got)
	}
	mustApply(t, r, want)
	if got := n.sysctl(t, "net/ipv4/conf/cali123/proxy_arp"); got != "1" {
		t.Errorf("proxy_arp of the re-created veth = %s", got)
	}
	sameLines(t, "ip route", n.ip(t, "route", "show"), []string{"10.65.0.5 dev cali123 proto 98 scope link"})
}

func TestKernelDriftIsRepaired(t *testing.T) {
	n := newNetNS(t)
	n.addVeth(t, "cali123")
	r := n.reconciler(t)
	want := state(wl("10.65.0.5/32", "cali123"), bh("10.65.0.0/26"))
	mustApply(t, r, want)

	// Someone deletes our route and changes the other.
	if err := n.h.RouteDel(&netlink.Route{Dst: &net.IPNet{IP: net.IPv4(10, 65, 0, 5).To4(), Mask: net.CIDRMask(32, 32)}, Protocol: dataplane.RouteProtocol, Scope: netlink.SCOPE_LINK}); err != nil {
		t.Fatal(err)
	}
	n.ip(t, "route", "replace", "blackhole", "10.65.0.0/26", "proto", "98", "mtu", "1000")
	problems, err := r.Check(slices.Collect(func(yield func(dataplane.Route) bool) {
		yield(want.Routes[pfx("10.65.0.5/32")])
		yield(want.Routes[pfx("10.65.0.0/26")])
	}))
	if err != nil || len(problems) != 2 {
		t.Errorf("check after drift: %v %q, want two problems", err, problems)
	}
	mustApply(t, r, want)
	sameLines(t, "ip route after repair", n.ip(t, "route", "show"), []string{
		"10.65.0.5 dev cali123 proto 98 scope link",
		"blackhole 10.65.0.0/26 proto 98",
	})
}
