package dataplane_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/tabbynet/tabby/felix/dataplane"
)

// Until BGP has synced after a restart, remote routes of the previous run
// stay in the kernel; everything else of ours is reconciled as usual, and
// once the flag is gone the unlisted remote routes are pruned.
func TestKeepRemoteRoutesUntilBGPSync(t *testing.T) {
	k, r := newKernel(t, "cali1", "tunl0")
	for _, old := range []string{
		"10.65.5.0/26 via 192.168.0.9 dev eth0 proto 98",                  // remote block, plain
		"10.65.6.0/26 via 192.168.1.9 dev tunl0 proto 98 onlink mtu 1480", // remote block, IPIP
		"10.65.0.8 dev cali1 proto 98 scope link",                         // stale workload
		"blackhole 10.65.9.0/26 proto 98",                                 // stale block
	} {
		if err := k.AddRoute(old); err != nil {
			t.Fatal(err)
		}
	}
	want := state(
		wl("10.65.0.5/32", "cali1"),
		// Re-learned already: replaced with the new next hop.
		dataplane.Route{Dst: pfx("10.65.6.0/26"), Gateway: netip.MustParseAddr("192.168.0.10"), Source: dataplane.SourceRemoteBlock},
	)
	want.KeepRemoteRoutes = true
	mustApply(t, r, want)
	diffText(t, "kernel while BGP syncs", k.Routes(), kernelText(t,
		"10.65.0.5 dev cali1 proto 98 scope link",
		"10.65.5.0/26 via 192.168.0.9 dev eth0 proto 98",
		"10.65.6.0/26 via 192.168.0.10 dev eth0 proto 98",
	))

	want.KeepRemoteRoutes = false
	mustApply(t, r, want)
	diffText(t, "kernel after BGP synced", k.Routes(), kernelText(t,
		"10.65.0.5 dev cali1 proto 98 scope link",
		"10.65.6.0/26 via 192.168.0.10 dev eth0 proto 98",
	))
}

func TestHasRemoteRoutes(t *testing.T) {
	k, r := newKernel(t, "cali1")
	// Only foreign routes and our own non-remote ones: no.
	if err := k.AddRoute("10.65.0.5 dev cali1 proto 98 scope link"); err != nil {
		t.Fatal(err)
	}
	if err := k.AddRoute("10.65.8.0/26 via 192.168.0.8 dev eth0 proto bird"); err != nil {
		t.Fatal(err)
	}
	if has, err := r.HasRemoteRoutes(); err != nil || has {
		t.Fatalf("HasRemoteRoutes = %v, %v; want false", has, err)
	}
	if err := k.AddRoute("10.65.5.0/26 via 192.168.0.9 dev eth0 proto 98"); err != nil {
		t.Fatal(err)
	}
	if has, err := dataplane.HasRemoteRoutes(k); err != nil || !has {
		t.Fatalf("HasRemoteRoutes = %v, %v; want true", has, err)
	}
}

// A route re-learned over BGP while the routes of the previous run are
// still kept takes their place: an incremental apply replaces the kept
// route at that destination instead of an exclusive add, which the kernel
// would refuse as if someone else owned the prefix (a failed apply and a
// full retry for every re-learned route after each agent restart).
func TestRelearnedRouteReplacesKeptOne(t *testing.T) {
	k, r := newKernel(t, "cali1")
	for _, old := range []string{
		"10.65.5.0/26 via 192.168.0.9 dev eth0 proto 98",
		"10.65.6.0/26 via 192.168.0.8 dev eth0 proto 98",
		"10.65.7.0/26 via 192.168.0.7 dev eth0 proto 98",
	} {
		if err := k.AddRoute(old); err != nil {
			t.Fatal(err)
		}
	}
	want := state(wl("10.65.0.5/32", "cali1"))
	want.KeepRemoteRoutes = true
	mustApply(t, r, want)

	// BGP re-learns two of them, one with a new next hop.
	k.InterruptDumps(1000) // an incremental apply must not need a dump
	k.ResetLog()
	want = incremental(state(wl("10.65.0.5/32", "cali1"), remote("10.65.5.0/26", "192.168.0.9"), remote("10.65.6.0/26", "192.168.0.10")))
	want.KeepRemoteRoutes = true
	mustApply(t, r, want)
	diffText(t, "netlink calls", strings.Join(sorted(k.Ops()), "\n"), strings.Join(sorted([]string{
		"replace 10.65.5.0/26 via 192.168.0.9 proto 98",
		"replace 10.65.6.0/26 via 192.168.0.10 proto 98",
	}), "\n"))

	// Synced: the one not re-learned goes, the re-learned ones stay.
	k.InterruptDumps(0)
	want.Incremental, want.KeepRemoteRoutes = false, false
	mustApply(t, r, want)
	diffText(t, "kernel after BGP synced", k.Routes(), kernelText(t,
		"10.65.0.5 dev cali1 proto 98 scope link",
		"10.65.5.0/26 via 192.168.0.9 dev eth0 proto 98",
		"10.65.6.0/26 via 192.168.0.10 dev eth0 proto 98",
	))
}
