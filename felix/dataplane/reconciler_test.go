package dataplane_test

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tabbynet/tabby/felix/dataplane"
	"github.com/tabbynet/tabby/felix/dataplane/dataplanetest"
)

// foreignRoutes are routes of other owners that every test seeds and that
// must come out of every apply exactly as they went in: one at another
// destination, one on a workload interface, one blackhole of BIRD's.
var foreignRoutes = []string{
	"192.168.0.0/24 dev eth0 proto kernel scope link",
	"10.65.0.99 dev cali1 proto static scope link",
	"blackhole 10.66.0.0/26 proto bird",
	"fd00:99::/64 dev eth0 proto static metric 1024",
}

func newKernel(t *testing.T, links ...string) (*dataplanetest.Kernel, *dataplane.Reconciler) {
	t.Helper()
	k := dataplanetest.New()
	for _, l := range append([]string{"eth0"}, links...) {
		k.AddLink(l)
	}
	for _, r := range foreignRoutes {
		if err := k.AddRoute(r); err != nil {
			t.Fatalf("seed %q: %v", r, err)
		}
	}
	return k, dataplane.NewReconciler(k, k, testLogger(t))
}

// withForeign returns the golden kernel text: the foreign routes merged into
// ours, in the fake's sort order.
func kernelText(t *testing.T, ours ...string) string {
	t.Helper()
	k := dataplanetest.New()
	for _, l := range []string{"eth0", "cali1", "cali2", "cali3", "tunl0", "vxlan.calico"} {
		k.AddLink(l)
	}
	for _, r := range append(slices.Clone(foreignRoutes), ours...) {
		if err := k.AddRoute(r); err != nil {
			t.Fatalf("golden route %q: %v", r, err)
		}
	}
	return k.Routes()
}

func mustApply(t *testing.T, r *dataplane.Reconciler, want dataplane.State) dataplane.State {
	t.Helper()
	reached, err := r.Apply(want)
	if err != nil {
		t.Fatalf("apply:\n%s\nerror: %v", want, err)
	}
	if !reached.Equal(want) {
		t.Fatalf("reached state differs from the wanted one\nreached:\n%s\nwant:\n%s", reached, want)
	}
	return reached
}

func diffText(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n--- got\n%s\n--- want\n%s", what, got, want)
	}
}

func TestApplyProgramsRouteShapes(t *testing.T) {
	k, r := newKernel(t, "cali1", "cali2", "tunl0", "vxlan.calico")
	want := state(
		wl("10.65.0.5/32", "cali1"),
		wl("10.65.0.6/32", "cali2"),
		wl("fd00:65::5/128", "cali1"),
		bh("10.65.0.0/26"),
		bh("fd00:65::/122"),
		dataplane.Route{Dst: pfx("10.65.1.0/26"), Gateway: netip.MustParseAddr("192.168.0.2"), Source: dataplane.SourceRemoteBlock},
		dataplane.Route{Dst: pfx("10.65.2.0/26"), Gateway: netip.MustParseAddr("192.168.1.3"), Iface: "tunl0", OnLink: true, MTU: 1480, Source: dataplane.SourceRemoteBlock},
		dataplane.Route{Dst: pfx("10.65.3.0/26"), Gateway: netip.MustParseAddr("10.65.3.0"), Iface: "vxlan.calico", OnLink: true, Source: dataplane.SourceRemoteBlock},
	)
	mustApply(t, r, want)
	diffText(t, "kernel routes", k.Routes(), kernelText(t,
		"10.65.0.5 dev cali1 proto 98 scope link",
		"10.65.0.6 dev cali2 proto 98 scope link",
		"fd00:65::5 dev cali1 proto 98 metric 1024",
		"blackhole 10.65.0.0/26 proto 98",
		"blackhole fd00:65::/122 dev lo proto 98 metric 1024",
		"10.65.1.0/26 via 192.168.0.2 dev eth0 proto 98",
		"10.65.2.0/26 via 192.168.1.3 dev tunl0 proto 98 onlink mtu 1480",
		"10.65.3.0/26 via 10.65.3.0 dev vxlan.calico proto 98 onlink",
	))

	// The same state again is a no-op: one dump, no writes of any kind.
	k.ResetLog()
	mustApply(t, r, want)
	if ops, w := k.Ops(), k.Writes(); len(ops)+len(w) != 0 {
		t.Errorf("second apply of the same state wrote: ops %q, sysctls %q", ops, w)
	}
}

func TestAddsAndReplacesBeforeDeleting(t *testing.T) {
	k, r := newKernel(t, "cali1", "cali2", "cali3")
	mustApply(t, r, state(
		wl("10.65.0.5/32", "cali1"),
		wl("10.65.0.6/32", "cali2"),
		bh("10.65.0.0/26"),
	))
	k.ResetLog()
	// .5 moves to cali3 (replace), .6 goes (delete), .7 comes (add), the
	// block goes (delete) and another comes (add).
	mustApply(t, r, state(
		wl("10.65.0.5/32", "cali3"),
		wl("10.65.0.7/32", "cali2"),
		bh("10.65.0.64/26"),
	))
	ops := k.Ops()
	diffText(t, "netlink calls", strings.Join(ops, "\n"), strings.Join([]string{
		"replace 10.65.0.5 dev cali3 proto 98 scope link",
		"add 10.65.0.7 dev cali2 proto 98 scope link",
		"add blackhole 10.65.0.64/26 proto 98",
		"del blackhole 10.65.0.0/26 proto 98",
		"del 10.65.0.6 dev cali2 proto 98 scope link",
	}, "\n"))
	diffText(t, "kernel routes", k.Routes(), kernelText(t,
		"10.65.0.5 dev cali3 proto 98 scope link",
		"10.65.0.7 dev cali2 proto 98 scope link",
		"blackhole 10.65.0.64/26 proto 98",
	))
}

func TestForeignRoutesAreNeverTouched(t *testing.T) {
	k, r := newKernel(t, "cali1")
	// A foreign route at a destination we will want with another metric,
	// and a stale route of ours (a previous Tabby) to be pruned.
	for _, s := range []string{"10.65.0.5 dev eth0 proto static scope link metric 100", "10.65.0.77 dev cali1 proto 98 scope link"} {
		if err := k.AddRoute(s); err != nil {
			t.Fatal(err)
		}
	}
	mustApply(t, r, state(wl("10.65.0.5/32", "cali1")))
	mustApply(t, r, dataplane.NewState())
	diffText(t, "kernel routes after programming and pruning everything", k.Routes(),
		kernelText(t, "10.65.0.5 dev eth0 proto static scope link metric 100"))
	for _, op := range k.Ops() {
		if !strings.Contains(op, "proto 98") {
			t.Errorf("netlink call on a route that is not ours: %s", op)
		}
	}
}

func TestConflictWithForeignRouteAtSameDestination(t *testing.T) {
	k, r := newKernel(t, "cali1", "cali2")
	if err := k.AddRoute("10.65.0.5 dev eth0 proto static scope link"); err != nil {
		t.Fatal(err)
	}
	want := state(wl("10.65.0.5/32", "cali1"), wl("10.65.0.6/32", "cali2"))
	reached, err := r.Apply(want)
	if !errors.Is(err, dataplane.ErrConflict) {
		t.Fatalf("apply: %v, want a conflict", err)
	}
	if f := dataplane.RouteFailure(err, pfx("10.65.0.5/32")); f == nil || !strings.Contains(f.Error(), "10.65.0.5 dev if2 proto static scope link") {
		t.Errorf("failure of 10.65.0.5/32 = %v, want a conflict naming the foreign route", f)
	}
	if f := dataplane.RouteFailure(err, pfx("10.65.0.6/32")); f != nil {
		t.Errorf("10.65.0.6/32 failed: %v", f)
	}
	if _, ok := reached.Routes[pfx("10.65.0.5/32")]; ok {
		t.Error("the conflicting route is reported as reached")
	}
	if _, ok := reached.Routes[pfx("10.65.0.6/32")]; !ok {
		t.Error("the other route is not reached")
	}
	diffText(t, "kernel routes (the foreign route unchanged)", k.Routes(), kernelText(t,
		"10.65.0.5 dev eth0 proto static scope link",
		"10.65.0.6 dev cali2 proto 98 scope link"))

	// The owner goes away: the next apply takes the destination.
	k.DelRoutes("10.65.0.5/32")
	mustApply(t, r, want)
}

// A foreign route appearing between the dump and the write is refused by
// the kernel (exclusive add), never overwritten.
func TestForeignRouteAppearingAfterDumpIsNotOverwritten(t *testing.T) {
	k, r := newKernel(t, "cali1")
	k.Fail("add", "10.65.0.5/32", unix.EEXIST)
	_, err := r.Apply(state(wl("10.65.0.5/32", "cali1")))
	if !errors.Is(err, dataplane.ErrConflict) {
		t.Fatalf("apply: %v, want a conflict", err)
	}
	for _, op := range k.Ops() {
		if strings.HasPrefix(op, "replace") {
			t.Errorf("replaced after a refused add: %s", op)
		}
	}
}

func TestMissingInterfaceFailsOnlyItsRoute(t *testing.T) {
	k, r := newKernel(t, "cali1")
	want := state(wl("10.65.0.5/32", "cali1"), wl("10.65.0.9/32", "cali9"), bh("10.65.0.0/26"))
	reached, err := r.Apply(want)
	if !errors.Is(err, dataplane.ErrNoInterface) {
		t.Fatalf("apply: %v, want a missing interface", err)
	}
	if dataplane.RouteFailure(err, pfx("10.65.0.9/32")) == nil || dataplane.IfaceFailure(err, "cali9") == nil {
		t.Errorf("the failure does not name the route and interface of cali9: %v", err)
	}
	wantReached := state(wl("10.65.0.5/32", "cali1"), bh("10.65.0.0/26"))
	if !reached.Equal(wantReached) {
		t.Errorf("reached:\n%s\nwant:\n%s", reached, wantReached)
	}
	// The CNI plugin finishes the veth: the next apply programs it.
	k.AddLink("cali9")
	mustApply(t, r, want)
	if got := k.Sysctl("net/ipv4/conf/cali9/proxy_arp"); got != "1" {
		t.Errorf("cali9 proxy_arp = %q after it appeared", got)
	}
}

func TestPartialFailureReturnsReachedState(t *testing.T) {
	k, r := newKernel(t, "cali1", "cali2", "cali3")
	mustApply(t, r, state(wl("10.65.0.5/32", "cali1"), wl("10.65.0.6/32", "cali2")))

	k.Fail("add", "10.65.0.7/32", unix.EIO)
	k.Fail("del", "10.65.0.6/32", unix.EBUSY)
	k.Fail("set", "net/ipv4/conf/cali3/proxy_arp", unix.EPERM)
	want := state(wl("10.65.0.5/32", "cali1"), wl("10.65.0.7/32", "cali3"), bh("10.65.0.0/26"))
	reached, err := r.Apply(want)
	if err == nil {
		t.Fatal("apply succeeded despite injected failures")
	}
	if got := len(dataplane.Failures(err)); got != 3 {
		t.Errorf("%d failures, want 3: %v", got, err)
	}
	if f := dataplane.RouteFailure(err, pfx("10.65.0.7/32")); !errors.Is(f, unix.EIO) {
		t.Errorf("failure of 10.65.0.7/32 = %v, want EIO", f)
	}
	if f := dataplane.RouteFailure(err, pfx("10.65.0.6/32")); !errors.Is(f, unix.EBUSY) {
		t.Errorf("failure of stale 10.65.0.6/32 = %v, want EBUSY", f)
	}
	if f := dataplane.IfaceFailure(err, "cali3"); !errors.Is(f, unix.EPERM) {
		t.Errorf("failure of cali3 = %v, want EPERM", f)
	}
	// Reached: what is really there now. The stale route could not be
	// deleted, so it is part of the reached state; .7 and cali3 are not.
	wantReached := state(wl("10.65.0.5/32", "cali1"), bh("10.65.0.0/26"), wl("10.65.0.6/32", "cali2"))
	delete(wantReached.WorkloadIfaces, "cali2")
	if !reached.Equal(wantReached) {
		t.Errorf("reached:\n%s\nwant:\n%s", reached, wantReached)
	}

	// Faults cleared: the next apply finishes the job.
	k.Fail("add", "10.65.0.7/32", nil)
	k.Fail("del", "10.65.0.6/32", nil)
	k.Fail("set", "net/ipv4/conf/cali3/proxy_arp", nil)
	mustApply(t, r, want)
	diffText(t, "kernel routes", k.Routes(), kernelText(t,
		"10.65.0.5 dev cali1 proto 98 scope link",
		"10.65.0.7 dev cali3 proto 98 scope link",
		"blackhole 10.65.0.0/26 proto 98",
	))
}

func TestDeleteOfVanishedRouteIsSuccess(t *testing.T) {
	k, r := newKernel(t, "cali1")
	mustApply(t, r, state(wl("10.65.0.5/32", "cali1")))
	k.Fail("del", "10.65.0.5/32", unix.ESRCH) // gone between dump and delete
	mustApply(t, r, dataplane.NewState())
}

func TestInterruptedDumpIsRetried(t *testing.T) {
	k, r := newKernel(t, "cali1")
	k.InterruptDumps(3)
	mustApply(t, r, state(wl("10.65.0.5/32", "cali1")))

	// A table that never stops changing: give up, touch no route, and
	// report the last reached routes.
	k.InterruptDumps(1000)
	k.ResetLog()
	reached, err := r.Apply(state(wl("10.65.0.6/32", "cali1")))
	if !errors.Is(err, netlink.ErrDumpInterrupted) {
		t.Fatalf("apply: %v, want the interrupted dump", err)
	}
	if _, ok := reached.Routes[pfx("10.65.0.5/32")]; !ok || len(reached.Routes) != 1 {
		t.Errorf("reached routes after a failed dump:\n%s", reached)
	}
	for _, op := range k.Ops() {
		t.Errorf("wrote a route without a dump: %s", op)
	}
}

func TestInvalidRoutesAreRejected(t *testing.T) {
	k, r := newKernel(t, "cali1")
	for _, bad := range []dataplane.Route{
		{Dst: pfx("10.65.0.0/26"), Type: dataplane.Blackhole, Iface: "cali1"},
		{Dst: pfx("10.65.0.5/32")},
		{Dst: pfx("10.65.1.0/26"), Gateway: netip.MustParseAddr("fd00::1")},
		{Dst: pfx("10.65.1.0/26"), Gateway: netip.MustParseAddr("10.0.0.1"), OnLink: true},
		{Dst: netip.PrefixFrom(netip.MustParseAddr("10.65.0.5"), 24), Iface: "cali1"},
		{Dst: pfx("10.65.0.5/32"), Iface: "../../x"},
	} {
		_, err := r.Apply(state(bad))
		if !errors.Is(err, dataplane.ErrInvalidRoute) {
			t.Errorf("apply %s: %v, want ErrInvalidRoute", bad, err)
		}
	}
	if ops := k.Ops(); len(ops) != 0 {
		t.Errorf("invalid routes reached the kernel: %q", ops)
	}
}

func TestWorkloadSysctls(t *testing.T) {
	k, r := newKernel(t, "cali1", "cali2")
	want := state(wl("10.65.0.5/32", "cali1"), wl("10.65.0.6/32", "cali2"))
	want.IPv4Forwarding = true
	mustApply(t, r, want)
	wantWrites := []string{
		"net/ipv4/ip_forward=1",
		"net/ipv4/conf/cali1/forwarding=1",
		"net/ipv4/conf/cali1/route_localnet=1",
		"net/ipv4/neigh/cali1/proxy_delay=0",
		"net/ipv4/conf/cali1/proxy_arp=1",
		"net/ipv4/conf/cali2/forwarding=1",
		"net/ipv4/conf/cali2/route_localnet=1",
		"net/ipv4/neigh/cali2/proxy_delay=0",
		"net/ipv4/conf/cali2/proxy_arp=1",
	}
	diffText(t, "sysctl writes", strings.Join(k.Writes(), "\n"), strings.Join(wantWrites, "\n"))

	// Once per appearance: nothing is written again...
	k.ResetLog()
	mustApply(t, r, want)
	if w := k.Writes(); len(w) != 0 {
		t.Errorf("sysctls rewritten for known interfaces: %q", w)
	}
	// ...until the veth is re-created (new ifindex) or forwarding drifts.
	k.DelLink("cali2")
	k.AddLink("cali2")
	if err := k.Set("net/ipv4/ip_forward", "0"); err != nil {
		t.Fatal(err)
	}
	k.ResetLog()
	mustApply(t, r, want)
	diffText(t, "sysctl writes after re-creating cali2", strings.Join(k.Writes(), "\n"), strings.Join([]string{
		"net/ipv4/ip_forward=1",
		"net/ipv4/conf/cali2/forwarding=1",
		"net/ipv4/conf/cali2/route_localnet=1",
		"net/ipv4/neigh/cali2/proxy_delay=0",
		"net/ipv4/conf/cali2/proxy_arp=1",
	}, "\n"))

	// IPv6 switched on: the IPv6 sysctls are added to known interfaces.
	want.IPv6Forwarding = true
	k.ResetLog()
	mustApply(t, r, want)
	diffText(t, "sysctl writes for IPv6", strings.Join(k.Writes(), "\n"), strings.Join([]string{
		"net/ipv6/conf/all/forwarding=1",
		"net/ipv6/conf/cali1/accept_ra=0",
		"net/ipv6/conf/cali1/forwarding=1",
		"net/ipv6/conf/cali1/proxy_ndp=1",
		"net/ipv6/conf/cali2/accept_ra=0",
		"net/ipv6/conf/cali2/forwarding=1",
		"net/ipv6/conf/cali2/proxy_ndp=1",
	}, "\n"))

	// IPv4Forwarding false means "leave it alone", not "turn it off".
	want.IPv4Forwarding = false
	k.ResetLog()
	mustApply(t, r, want)
	if got := k.Sysctl("net/ipv4/ip_forward"); got != "1" || len(k.Writes()) != 0 {
		t.Errorf("ip_forward = %q, writes %q: forwarding must be left alone", got, k.Writes())
	}
}

func TestCheck(t *testing.T) {
	k, r := newKernel(t, "cali1", "cali2")
	mustApply(t, r, state(wl("10.65.0.5/32", "cali1"), wl("10.65.0.6/32", "cali2")))
	if err := k.AddRoute("10.65.0.8 dev eth0 proto static scope link"); err != nil {
		t.Fatal(err)
	}
	k.DelRoutes("10.65.0.6/32")
	problems, err := r.Check([]dataplane.Route{
		wl("10.65.0.5/32", "cali1"), // fine
		wl("10.65.0.6/32", "cali2"), // deleted behind our back
		wl("10.65.0.5/32", "cali2"), // the kernel has it on cali1
		wl("10.65.0.8/32", "cali1"), // someone else's
		wl("10.65.0.9/32", "cali9"), // no interface
	})
	if err != nil {
		t.Fatal(err)
	}
	diffText(t, "problems", strings.Join(problems, "\n"), strings.Join([]string{
		`route 10.65.0.6/32 dev cali2 scope link: missing from the kernel`,
		`route 10.65.0.5/32 dev cali2 scope link: the kernel has "10.65.0.5 dev cali1 proto 98 scope link" instead`,
		`route 10.65.0.8/32 dev cali1 scope link: the kernel has "10.65.0.8 dev if2 proto static scope link" instead`,
		`route 10.65.0.9/32 dev cali9 scope link: interface does not exist: cali9`,
	}, "\n"))
}

// TestRouteStates is a table of states, each with the kernel it must leave
// behind, replayed in random order: any state must be reachable from any
// other, with foreign routes intact throughout.
func TestRouteStates(t *testing.T) {
	gw := netip.MustParseAddr("192.168.0.2")
	states := []struct {
		name   string
		state  dataplane.State
		kernel []string
	}{
		{name: "empty", state: dataplane.NewState()},
		{
			name:   "one workload",
			state:  state(wl("10.65.0.5/32", "cali1")),
			kernel: []string{"10.65.0.5 dev cali1 proto 98 scope link"},
		},
		{
			name:  "workloads and block",
			state: state(wl("10.65.0.5/32", "cali1"), wl("10.65.0.6/32", "cali2"), bh("10.65.0.0/26")),
			kernel: []string{
				"10.65.0.5 dev cali1 proto 98 scope link",
				"10.65.0.6 dev cali2 proto 98 scope link",
				"blackhole 10.65.0.0/26 proto 98",
			},
		},
		{
			name:   "workload moved to another veth",
			state:  state(wl("10.65.0.5/32", "cali2"), bh("10.65.0.0/26")),
			kernel: []string{"10.65.0.5 dev cali2 proto 98 scope link", "blackhole 10.65.0.0/26 proto 98"},
		},
		{
			name: "dual stack",
			state: state(wl("10.65.0.5/32", "cali1"), wl("fd00:65::5/128", "cali1"), bh("fd00:65::/122"),
				dataplane.Route{Dst: pfx("10.65.1.0/26"), Gateway: gw}),
			kernel: []string{
				"10.65.0.5 dev cali1 proto 98 scope link",
				"fd00:65::5 dev cali1 proto 98 metric 1024",
				"blackhole fd00:65::/122 dev lo proto 98 metric 1024",
				"10.65.1.0/26 via 192.168.0.2 dev eth0 proto 98",
			},
		},
		{
			name: "remote over tunnels",
			state: state(
				dataplane.Route{Dst: pfx("10.65.1.0/26"), Gateway: gw, Iface: "tunl0", OnLink: true, MTU: 1480},
				dataplane.Route{Dst: pfx("10.65.2.0/26"), Gateway: netip.MustParseAddr("10.65.2.0"), Iface: "vxlan.calico", OnLink: true, MTU: 1450},
				wl("10.65.0.5/32", "cali3"),
			),
			kernel: []string{
				"10.65.0.5 dev cali3 proto 98 scope link",
				"10.65.1.0/26 via 192.168.0.2 dev tunl0 proto 98 onlink mtu 1480",
				"10.65.2.0/26 via 10.65.2.0 dev vxlan.calico proto 98 onlink mtu 1450",
			},
		},
		{
			name: "metric and MTU changes",
			state: state(
				dataplane.Route{Dst: pfx("10.65.1.0/26"), Gateway: gw, Iface: "tunl0", OnLink: true},
				dataplane.Route{Dst: pfx("10.65.0.5/32"), Iface: "cali1", Scope: dataplane.ScopeLink, Metric: 512},
			),
			kernel: []string{
				"10.65.0.5 dev cali1 proto 98 scope link metric 512",
				"10.65.1.0/26 via 192.168.0.2 dev tunl0 proto 98 onlink",
			},
		},
	}
	for i := range states {
		states[i].kernel = strings.Split(kernelText(t, states[i].kernel...), "\n")
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	k, r := newKernel(t, "cali1", "cali2", "cali3", "tunl0", "vxlan.calico")
	// Every state at least once from every other: a random walk of many
	// steps over 7 states, plus every state visited in order first.
	order := make([]int, 0, 200)
	for i := range states {
		order = append(order, i)
	}
	for range 150 {
		order = append(order, rng.IntN(len(states)))
	}
	prev := "initial"
	for step, i := range order {
		s := states[i]
		reached, err := r.Apply(s.state)
		if err != nil {
			t.Fatalf("step %d: %s -> %s: %v", step, prev, s.name, err)
		}
		if !reached.Equal(s.state) {
			t.Fatalf("step %d: %s -> %s: reached\n%s", step, prev, s.name, reached)
		}
		if got, want := k.Routes(), strings.Join(s.kernel, "\n"); got != want {
			t.Fatalf("step %d: %s -> %s (seed %d): kernel\n%s\nwant\n%s", step, prev, s.name, seed, got, want)
		}
		prev = s.name
	}
}
