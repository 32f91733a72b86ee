package dataplane_test

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/tabbynet/tabby/felix/dataplane"
)

const benchWorkloads = 250

// benchVeths creates benchWorkloads real veths named like Calico's
// (cali + 11 hex characters of sha1("<namespace>.<pod>")) and returns the
// state that routes one pod address to each.
func benchVeths(b *testing.B, n *netNS) (dataplane.State, []*netlink.Route) {
	b.Helper()
	want := dataplane.NewState()
	raw := make([]*netlink.Route, 0, benchWorkloads)
	for i := range benchWorkloads {
		sum := sha1.Sum([]byte(fmt.Sprintf("bench.pod-%d", i)))
		name := "cali" + hex.EncodeToString(sum[:])[:11]
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: fmt.Sprintf("pod%d", i)}
		if err := n.h.LinkAdd(v); err != nil {
			b.Fatalf("add veth %s: %v", name, err)
		}
		link, err := n.h.LinkByName(name)
		if err != nil {
			b.Fatal(err)
		}
		if err := n.h.LinkSetUp(link); err != nil {
			b.Fatal(err)
		}
		ip := net.IPv4(10, 65, byte(i/200), byte(i%200+1)).To4()
		want.AddRoute(dataplane.Route{Dst: pfx(ip.String() + "/32"), Iface: name, Scope: dataplane.ScopeLink})
		want.AddIface(name)
		raw = append(raw, &netlink.Route{
			Dst:       &net.IPNet{IP: ip, Mask: net.CIDRMask(32, 32)},
			LinkIndex: link.Attrs().Index,
			Scope:     netlink.SCOPE_LINK,
			Protocol:  dataplane.RouteProtocol,
		})
	}
	return want, raw
}

// inNetNS runs the benchmark body on a thread inside the namespace, so
// sysctls are written straight to /proc/sys as the node agent does in the
// host namespace (ProcSys without a NetNS), not through ns.Do per write.
func inNetNS(b *testing.B, n *netNS, body func()) {
	b.Helper()
	if err := n.ns.Do(func(ns.NetNS) error { body(); return nil }); err != nil {
		b.Fatal(err)
	}
}

func routesOnly(s dataplane.State) dataplane.State {
	c := s.Clone()
	c.WorkloadIfaces = nil
	return c
}

// BenchmarkProgram250WorkloadRoutes: one Apply that adds 250 workload
// routes to a table with none (dump, 250 interface look-ups, 250 adds).
// Compare with BenchmarkRawNetlink250Routes for the reconciler's overhead.
func BenchmarkProgram250WorkloadRoutes(b *testing.B) {
	n := newNetNS(b)
	full, _ := benchVeths(b, n)
	want := routesOnly(full)
	inNetNS(b, n, func() {
		r := dataplane.NewReconciler(n.h, dataplane.ProcSys{}, discardLogger())
		b.ResetTimer()
		for range b.N {
			if _, err := r.Apply(want); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if _, err := r.Apply(dataplane.NewState()); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}

// BenchmarkRawNetlink250Routes: the floor, 250 RouteAdd calls on one handle.
func BenchmarkRawNetlink250Routes(b *testing.B) {
	n := newNetNS(b)
	_, raw := benchVeths(b, n)
	b.ResetTimer()
	for range b.N {
		for _, r := range raw {
			if err := n.h.RouteAdd(r); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		for _, r := range raw {
			if err := n.h.RouteDel(r); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
}

// BenchmarkProgram250Workloads: routes and the workload sysctls of 250 new
// veths (4 /proc writes each), what a node does when 250 pods arrive at once.
func BenchmarkProgram250Workloads(b *testing.B) {
	n := newNetNS(b)
	want, _ := benchVeths(b, n)
	inNetNS(b, n, func() {
		r := dataplane.NewReconciler(n.h, dataplane.ProcSys{}, discardLogger())
		b.ResetTimer()
		for range b.N {
			if _, err := r.Apply(want); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			// Forget the interfaces too, so the next iteration writes their
			// sysctls again as for new veths.
			if _, err := r.Apply(dataplane.NewState()); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}

// BenchmarkResync250WorkloadRoutes: a periodic resync with nothing to do
// (dump, 250 look-ups, compare), the steady-state cost of RouteRefreshInterval.
func BenchmarkResync250WorkloadRoutes(b *testing.B) {
	n := newNetNS(b)
	want, _ := benchVeths(b, n)
	inNetNS(b, n, func() {
		r := dataplane.NewReconciler(n.h, dataplane.ProcSys{}, discardLogger())
		if _, err := r.Apply(want); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			if _, err := r.Apply(want); err != nil {
				b.Fatal(err)
			}
		}
	})
}
