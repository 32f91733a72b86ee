package dataplane_test

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tabbynet/tabby/felix/dataplane"
)

func remote(dst, gw string) dataplane.Route {
	return dataplane.Route{Dst: pfx(dst), Gateway: netip.MustParseAddr(gw), Source: dataplane.SourceRemoteBlock}
}

func incremental(s dataplane.State) dataplane.State {
	s.Incremental = true
	return s
}

// After a successful apply, an incremental one writes only the difference
// and never dumps the table (every dump would fail here); it does not see
// drift, which the next full apply repairs.
func TestIncrementalApply(t *testing.T) {
	k, r := newKernel(t, "cali1", "cali2")
	// The first apply is full even when asked to be incremental: there is
	// no record of the kernel yet.
	mustApply(t, r, incremental(state(wl("10.65.0.5/32", "cali1"), bh("10.65.0.0/26"), remote("10.65.1.0/26", "192.168.0.2"))))

	k.InterruptDumps(1000)
	k.ResetLog()
	want := incremental(state(
		wl("10.65.0.5/32", "cali2"),           // moved: replace
		wl("10.65.0.6/32", "cali1"),           // new: add
		remote("10.65.2.0/26", "192.168.0.3"), // new remote
		dataplane.Route{Dst: pfx("10.65.1.0/26"), Gateway: netip.MustParseAddr("192.168.0.2"), Metric: 5}, // new metric: add, then delete the old key
	))
	mustApply(t, r, want)
	diffText(t, "netlink calls", strings.Join(sorted(k.Ops()), "\n"), strings.Join(sorted([]string{
		"replace 10.65.0.5 dev cali2 proto 98 scope link",
		"add 10.65.0.6 dev cali1 proto 98 scope link",
		"add 10.65.2.0/26 via 192.168.0.3 proto 98",
		"add 10.65.1.0/26 via 192.168.0.2 proto 98 metric 5",
		"del 10.65.1.0/26 via 192.168.0.2 proto 98",
		"del blackhole 10.65.0.0/26 proto 98",
	}), "\n"))
	diffText(t, "kernel routes", k.Routes(), kernelText(t,
		"10.65.0.5 dev cali2 proto 98 scope link",
		"10.65.0.6 dev cali1 proto 98 scope link",
		"10.65.1.0/26 via 192.168.0.2 dev eth0 proto 98 metric 5",
		"10.65.2.0/26 via 192.168.0.3 dev eth0 proto 98",
	))

	// Drift behind our back: invisible to incremental applies...
	k.DelRoutes("10.65.2.0/26")
	k.ResetLog()
	mustApply(t, r, want)
	if ops := k.Ops(); len(ops) != 0 {
		t.Fatalf("an incremental apply without changes wrote %q", ops)
	}
	// ...repaired by the next full one.
	k.InterruptDumps(0)
	want.Incremental = false
	mustApply(t, r, want)
	if !strings.Contains(k.Routes(), "10.65.2.0/26 via 192.168.0.3") {
		t.Fatalf("full apply did not repair the drift:\n%s", k.Routes())
	}
}

// A failed apply makes the next one full: the record of the kernel is
// no longer trusted.
func TestIncrementalAfterFailureIsFull(t *testing.T) {
	k, r := newKernel(t, "cali1")
	mustApply(t, r, state(wl("10.65.0.5/32", "cali1")))
	k.Fail("add", "10.65.0.6/32", unix.ENOMEM)
	if _, err := r.Apply(incremental(state(wl("10.65.0.5/32", "cali1"), wl("10.65.0.6/32", "cali1")))); err == nil {
		t.Fatal("apply with a failing add succeeded")
	}
	k.Fail("add", "10.65.0.6/32", nil)
	k.InterruptDumps(1000)
	_, err := r.Apply(incremental(state(wl("10.65.0.5/32", "cali1"), wl("10.65.0.6/32", "cali1"))))
	if err == nil || !errors.Is(err, netlink.ErrDumpInterrupted) {
		t.Fatalf("apply after a failure did not dump (err %v)", err)
	}
}

func sorted(l []string) []string { return slices.Sorted(slices.Values(l)) }
