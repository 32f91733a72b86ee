package ipam

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	v3 "github.com/tabbynet/tabby/api/v3"
)

func TestCheckFindsEachProblemAndReleaseFromReportFreesOnlyLeaks(t *testing.T) {
	ds := newStore(t)
	ctx := testCtx(t)
	createPool(t, ds, "p", "10.0.0.0/24")
	createNode(t, ds, "n1", nil)
	m := newIPAM(t, ds)
	// The allocations are older than the release grace period, as leaks
	// found by an operator are; the clock is back to now before Check.
	m.now = func() time.Time { return time.Now().Add(-2 * DefaultReleaseGrace) }
	one := func(node, handle string, attrs map[string]string) netip.Addr {
		t.Helper()
		v4, _, err := m.AutoAssign(ctx, AssignArgs{Num4: 1, HandleID: handle, Node: node, Attrs: attrs})
		if err != nil {
			t.Fatal(err)
		}
		return v4[0].Addr()
	}
	pod := func(name string) map[string]string {
		return map[string]string{AttributeNamespace: "default", AttributePod: name}
	}

	inUseByCID := one("n1", "k8s-pod-network.c1", pod("p1"))
	createWEP(t, ds, "default", "p1", "c1", inUseByCID.String()+"/32")
	leaked := one("n1", "k8s-pod-network.c2", pod("p2")) // pod gone
	inUseByPod := one("n1", "other-3", pod("p3"))
	createWEP(t, ds, "default", "p3", "c3") // the workload lists no IP yet
	willBeOwned := one("n1", "k8s-pod-network.c7", pod("p7"))
	willBeReused := one("n1", "k8s-pod-network.c8", pod("p8"))
	orphanedButUsed := one("gone-node", "k8s-pod-network.c5", pod("p5")) // its node does not exist
	createWEP(t, ds, "default", "p5", "c5")
	noHandleRecord := one("n1", "k8s-pod-network.c6", pod("p6"))
	createWEP(t, ds, "default", "p6", "c6")
	if _, err := ds.Delete(ctx, handleKey(handleName("k8s-pod-network.c6")), ""); err != nil {
		t.Fatal(err)
	}
	if err := m.addToHandle(ctx, "k8s-pod-network.c9", netip.MustParsePrefix("10.0.0.0/26"), 1); err != nil {
		t.Fatal(err)
	}
	createWEP(t, ds, "default", "p4", "c4", "10.0.0.200/32") // in use, never allocated
	createWEP(t, ds, "default", "p10", "c10", "192.168.1.1") // outside the pools
	tunnel := one("n1", "ipip-tunnel-addr-n1", map[string]string{AttributeType: "ipipTunnelAddress"})
	n1, _ := ds.Get(ctx, v3.Key{Kind: "Node", Name: "n1"})
	n1.(*v3.Node).Spec.BGP = &v3.NodeBGPSpec{IPv4IPIPTunnelAddr: tunnel.String()}
	if _, err := ds.Update(ctx, n1); err != nil {
		t.Fatal(err)
	}

	m.now = time.Now
	r, err := m.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leakedIPs := func(r *Report) []string {
		var out []string
		for _, a := range r.Leaked() {
			out = append(out, a.IP)
		}
		slices.Sort(out)
		return out
	}
	want := []string{leaked.String(), willBeOwned.String(), willBeReused.String()}
	slices.Sort(want)
	if got := leakedIPs(r); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("leaked = %v, want %v", got, want)
	}
	for _, a := range r.Allocations {
		if a.InUse && len(a.Owners) == 0 {
			t.Errorf("%s in use without owners", a.IP)
		}
	}
	if fmt.Sprint(r.Missing) != "[{10.0.0.200 Workload(default/n1-k8s-p4-eth0) true} {192.168.1.1 Workload(default/n1-k8s-p10-eth0) false}]" {
		t.Errorf("missing = %v", r.Missing)
	}
	if len(r.OrphanedBlocks) != 1 || r.OrphanedBlocks[0].Affinity != "host:gone-node" {
		t.Errorf("orphaned blocks = %+v", r.OrphanedBlocks)
	}
	if len(r.OrphanedAffinities) != 1 || r.OrphanedAffinities[0].Node != "gone-node" {
		t.Errorf("orphaned affinities = %+v", r.OrphanedAffinities)
	}
	if len(r.LeakedHandles) != 1 || r.LeakedHandles[0].HandleID != "k8s-pod-network.c9" {
		t.Errorf("leaked handles = %+v", r.LeakedHandles)
	}
	if len(r.MissingHandles) != 1 || r.MissingHandles[0].HandleID != "k8s-pod-network.c6" {
		t.Errorf("missing handles = %+v", r.MissingHandles)
	}
	if len(r.HandleMismatches) != 0 || len(r.MalformedBlocks) != 0 {
		t.Errorf("unexpected: %+v %+v", r.HandleMismatches, r.MalformedBlocks)
	}
	if r.Problems() != 3+2+1+1+1+1 {
		t.Errorf("problems = %d", r.Problems())
	}
	_ = inUseByPod
	_ = orphanedButUsed
	_ = noHandleRecord

	// The report survives its JSON form.
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}

	// Between the report and the release, one leaked address gains its
	// workload and another is released and given to a new pod.
	createWEP(t, ds, "default", "p7", "c7")
	if err := m.ReleaseByHandle(ctx, "k8s-pod-network.c8"); err != nil {
		t.Fatal(err)
	}
	if err := m.AssignIP(ctx, willBeReused, "k8s-pod-network.c11", pod("p11"), "n1"); err != nil {
		t.Fatal(err)
	}
	createWEP(t, ds, "default", "p11", "c11")

	res, err := m.ReleaseFromReport(ctx, &back, ReportReleaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Released) != fmt.Sprint([]netip.Addr{leaked}) {
		t.Errorf("released %v, want only %s", res.Released, leaked)
	}
	if fmt.Sprint(res.StillInUse) != fmt.Sprint([]netip.Addr{willBeOwned}) {
		t.Errorf("still in use = %v", res.StillInUse)
	}
	if fmt.Sprint(res.Changed) != fmt.Sprint([]netip.Addr{willBeReused}) {
		t.Errorf("changed = %v", res.Changed)
	}
	if fmt.Sprint(res.DeletedHandles) != "[k8s-pod-network.c9]" {
		t.Errorf("deleted handles = %v", res.DeletedHandles)
	}
	if info, err := m.AllocationInfo(ctx, willBeReused); err != nil || info.HandleID != "k8s-pod-network.c11" {
		t.Errorf("the re-assigned address lost its new owner: %+v, %v", info, err)
	}
	after, err := m.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := leakedIPs(after); len(got) != 0 {
		t.Errorf("leaks after release: %v", got)
	}
	if len(after.Allocations) != len(r.Allocations)-1 {
		t.Errorf("%d allocations after release, want %d", len(after.Allocations), len(r.Allocations)-1)
	}
	if len(after.LeakedHandles) != 0 {
		t.Errorf("leaked handles after release: %+v", after.LeakedHandles)
	}
	// Releasing the same report again changes nothing.
	res, err = m.ReleaseFromReport(ctx, &back, ReportReleaseOptions{})
	if err != nil || len(res.Released) != 0 {
		t.Errorf("second release: %+v, %v", res, err)
	}
}

// An allocation younger than the grace period before the report may belong
// to an ADD that has not written its endpoint yet: it is kept unless forced.
func TestReleaseFromReportKeepsYoungAllocationsUnlessForced(t *testing.T) {
	ds := newStore(t)
	ctx := testCtx(t)
	createPool(t, ds, "p", "10.0.0.0/24")
	createNode(t, ds, "n1", nil)
	m := newIPAM(t, ds)
	assign := func(handle string, at time.Time) netip.Addr {
		t.Helper()
		m.now = func() time.Time { return at }
		v4, _, err := m.AutoAssign(ctx, AssignArgs{Num4: 1, HandleID: handle, Node: "n1",
			Attrs: map[string]string{AttributeNamespace: "default", AttributePod: handle}})
		if err != nil {
			t.Fatal(err)
		}
		return v4[0].Addr()
	}
	now := time.Now()
	old := assign("k8s-pod-network.old", now.Add(-2*DefaultReleaseGrace))
	young := assign("k8s-pod-network.young", now.Add(-DefaultReleaseGrace/2))
	m.now = func() time.Time { return now }
	r, err := m.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Leaked()) != 2 {
		t.Fatalf("leaked = %+v, want both allocations", r.Leaked())
	}

	res, err := m.ReleaseFromReport(ctx, r, ReportReleaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Released) != fmt.Sprint([]netip.Addr{old}) || fmt.Sprint(res.TooNew) != fmt.Sprint([]netip.Addr{young}) {
		t.Errorf("released %v, too new %v; want released [%s], too new [%s]", res.Released, res.TooNew, old, young)
	}
	if info, err := m.AllocationInfo(ctx, young); err != nil || info.HandleID != "k8s-pod-network.young" {
		t.Errorf("the young allocation was released: %+v, %v", info, err)
	}

	res, err = m.ReleaseFromReport(ctx, r, ReportReleaseOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Released) != fmt.Sprint([]netip.Addr{young}) || len(res.TooNew) != 0 {
		t.Errorf("forced: released %v, too new %v; want released [%s]", res.Released, res.TooNew, young)
	}
	if _, err := m.AllocationInfo(ctx, young); err == nil {
		t.Error("a forced release left the young allocation allocated")
	}
}

func TestParseTimestamp(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	for _, s := range []string{at.String(), at.Format(time.RFC3339Nano)} {
		if got, ok := ParseTimestamp(s); !ok || !got.Equal(at) {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want %v", s, got, ok, at)
		}
	}
	for _, s := range []string{"", "t0", "yesterday"} {
		if _, ok := ParseTimestamp(s); ok {
			t.Errorf("ParseTimestamp(%q) succeeded", s)
		}
	}
}
