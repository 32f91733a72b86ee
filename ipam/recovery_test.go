package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

// These tests write the records a crash between two steps leaves behind,
// then check that the next call repairs or ignores them correctly.

func writeAffinity(t *testing.T, ds datastore.Interface, node, cidr string, state v3.BlockAffinityState) {
	t.Helper()
	p := netip.MustParsePrefix(cidr)
	a := &v3.BlockAffinity{}
	a.Name = affinityName(node, p)
	a.Spec = v3.BlockAffinitySpec{State: state, Node: node, Type: "host", CIDR: cidr}
	if _, err := ds.Create(context.Background(), a); err != nil {
		t.Fatalf("create affinity: %v", err)
	}
}

func writeBlock(t *testing.T, ds datastore.Interface, node, cidr string) {
	t.Helper()
	if _, err := ds.Create(context.Background(), newBlock(netip.MustParsePrefix(cidr), node, false, testNow)); err != nil {
		t.Fatalf("create block: %v", err)
	}
}

func affinityState(t *testing.T, ds datastore.Interface, node, cidr string) v3.BlockAffinityState {
	t.Helper()
	a, err := getAs[*v3.BlockAffinity](context.Background(), ds, affinityKey(affinityName(node, netip.MustParsePrefix(cidr))))
	if datastore.IsNotFound(err) {
		return "<absent>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return a.Spec.State
}

// Crash after claim step 1: a pending affinity, no block.
func TestRecoverPendingAffinityWithoutBlock(t *testing.T) {
	ds := newStore(t)
	ctx := testCtx(t)
	createPool(t, ds, "p", "10.0.0.0/24")
	writeAffinity(t, ds, "n1", "10.0.0.128/26", v3.AffinityStatePending)
	m := newIPAM(t, ds)
	if blocks, _ := m.BlocksForNode(ctx, "n1"); len(blocks) != 0 {
		t.Fatalf("a pending affinity is not ownership: %v", blocks)
	}
	got := assign(t, m, "n1", "h", 1)
	if got[0].String() != "10.0.0.128/26" {
		t.Fatalf("the interrupted claim must be finished and used, got %s", got[0])
	}
	if s := affinityState(t, ds, "n1", "10.0.0.128/26"); s != v3.AffinityStateConfirmed {
		t.Fatalf("affinity state = %s", s)
	}
	checkInvariants(t, m)
}

// Crash after claim step 1, and another node took the block meanwhile.
func TestStalePendingAffinityOfLoser(t *testing.T) {
	ds := newStore(t)
	ctx := testCtx(t)
	createPool(t, ds, "p", "10.0.0.0/24")
	m := newIPAM(t, ds)
	assign(t, m, "n1", "a", 1) // n1 owns 10.0.0.0/26
	writeAffinity(t, ds, "n2", "10.0.0.0/26", v3.AffinityStatePending)
	if blocks, _ := m.BlocksForNode(ctx, "n2"); len(blocks) != 0 {
		t.Fatalf("n2 must not own n1's block: %v", blocks)
	}
	got := assign(t, m, "n2", "b", 1)
	if got[0].String() != "10.0.0.64/26" {
		t.Fatalf("n2 got %s, want a block of its own", got[0])
	}
	if s := affinityState(t, ds, "n2", "10.0.0.0/26"); s != "<absent>" {
		t.Fatalf("stale affinity of n2 is %s, want deleted", s)
	}
	checkInvariants(t, m)
}

// Crash after claim step 2: the block names the node, the affinity is still
// pending.
func TestRecoverUnconfirmedAffinity(t *testing.T) {
	ds := newStore(t)
	ctx := testCtx(t)
	createPool(t, ds, "p", "10.0.0.0/24")
	writeAffinity(t, ds, "n1", "10.0.0.64/26", v3.AffinityStatePending)
	writeBlock(t, ds, "n1", "10.0.0.64/26")
	m := newIPAM(t, ds)
	if blocks, _ := m.BlocksForNode(ctx, "n1"); len(blocks) != 0 {
		t.Fatalf("unconfirmed block reported as owned: %v", blocks)
	}
	// Another node does not take it.
	if got := assign(t, m, "n2", "x", 1); got[0].String() != "10.0.0.0/26" {
		t.Fatalf("n2 got %s", got[0])
	}
	got := assign(t, m, "n1", "h", 1)
	if got[0].String() != "10.0.0.64/26" {
		t.Fatalf("n1 got %s, want its unconfirmed block", got[0])
	}
	if blocks, _ := m.BlocksForNode(ctx, "n1"); fmt.Sprint(blocks) != "[10.0.0.64/26]" {
		t.Fatalf("after repair BlocksForNode = %v", blocks)
	}
	checkInvariants(t, m)
}

// Crash in the middle of ReleaseHostAffinities: the affinity is
// pendingDeletion, the block still names the node.
func TestRecoverInterruptedAffinityRelease(t *testing.T) {
	ds := newStore(t)
	ctx := testCtx(t)
	createPool(t, ds, "p", "10.0.0.0/24")
	m := newIPAM(t, ds)
	assign(t, m, "n1", "h", 2)
	a, err := getAs[*v3.BlockAffinity](ctx, ds, affinityKey(affinityName("n1", netip.MustParsePrefix("10.0.0.0/26"))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.setAffinityState(ctx, a, v3.AffinityStatePendingDeletion); err != nil {
		t.Fatal(err)
	}
	if blocks, _ := m.BlocksForNode(ctx, "n1"); len(blocks) != 0 {
		t.Fatalf("a block being given up is not owned: %v", blocks)
	}
	r, err := m.Check(ctx)
	if err != nil || len(r.OrphanedAffinities) != 1 || r.OrphanedAffinities[0].State != "pendingDeletion" {
		t.Fatalf("check must report the interrupted release: %+v, %v", r.OrphanedAffinities, err)
	}
	if err := m.ReleaseHostAffinities(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	s := checkInvariants(t, m)
	if len(s.affs) != 0 || len(s.blocks) != 1 || s.blocks[0].owner() != "" || len(s.byAddr) != 2 {
		t.Fatalf("after finishing the release: %d affinities, blocks %v", len(s.affs), s.blocks)
	}
}

// Crash after a handle increment, before the block write: the handle
// over-counts. ReleaseByHandle still cleans everything up.
func TestOverCountingHandle(t *testing.T) {
	ds := newStore(t)
	ctx := testCtx(t)
	createPool(t, ds, "p", "10.0.0.0/24")
	m := newIPAM(t, ds)
	got := assign(t, m, "n1", "h", 1)
	if err := m.addToHandle(ctx, "h", netip.MustParsePrefix("10.0.0.0/26"), 2); err != nil {
		t.Fatal(err)
	}
	if err := m.addToHandle(ctx, "h", netip.MustParsePrefix("10.0.0.64/26"), 1); err != nil { // a block that does not exist
		t.Fatal(err)
	}
	r, err := m.Check(ctx)
	if err != nil || len(r.HandleMismatches) != 1 || r.HandleMismatches[0].Counted != 4 || r.HandleMismatches[0].Actual != 1 {
		t.Fatalf("check: %+v, %v", r.HandleMismatches, err)
	}
	if ips, _ := m.IPsByHandle(ctx, "h"); len(ips) != 1 || ips[0] != got[0].Addr() {
		t.Fatalf("IPsByHandle = %v", ips)
	}
	if err := m.ReleaseByHandle(ctx, "h"); err != nil {
		t.Fatal(err)
	}
	s := checkInvariants(t, m)
	if len(s.handles) != 0 || len(s.byAddr) != 0 {
		t.Fatalf("after ReleaseByHandle: %d handles, %d allocations", len(s.handles), len(s.byAddr))
	}
}

// A block record whose free list claims an allocated address (corruption)
// is never allocated from, so that address is not handed out twice; the
// node carries on with another block and `ipam check` reports the bad one.
func TestCorruptBlockIsNotUsed(t *testing.T) {
	ds := newStore(t)
	createPool(t, ds, "p", "10.0.0.0/24")
	writeAffinity(t, ds, "n1", "10.0.0.0/26", v3.AffinityStateConfirmed)
	b := newBlock(netip.MustParsePrefix("10.0.0.0/26"), "n1", false, testNow)
	zero := 0
	b.Spec.Attributes = []v3.AllocationAttribute{{}}
	b.Spec.Allocations[0] = &zero // allocated, yet still at the head of the free list
	if _, err := ds.Create(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	m := newIPAM(t, ds)
	got := assign(t, m, "n1", "h", 1)
	if got[0].String() != "10.0.0.64/26" {
		t.Fatalf("got %s, want an address of a new block", got[0])
	}
	r, err := m.Check(testCtx(t))
	if err != nil || len(r.MalformedBlocks) != 1 || r.MalformedBlocks[0].Name != "10-0-0-0-26" {
		t.Fatalf("check must report the malformed block: %+v, %v", r.MalformedBlocks, err)
	}
}

// A block that names the node but has no affinity record (deleted by hand)
// is not used and does not stall allocation; `ipam check` reports it.
func TestBlockWithoutAffinityRecord(t *testing.T) {
	ds := newStore(t)
	createPool(t, ds, "p", "10.0.0.0/24")
	createNode(t, ds, "n1", nil)
	writeBlock(t, ds, "n1", "10.0.0.0/26")
	m := newIPAM(t, ds)
	if got := assign(t, m, "n1", "h", 1); got[0].String() != "10.0.0.64/26" {
		t.Fatalf("got %s", got[0])
	}
	r, err := m.Check(testCtx(t))
	if err != nil || len(r.OrphanedBlocks) != 1 || r.OrphanedBlocks[0].CIDR != "10.0.0.0/26" ||
		r.OrphanedBlocks[0].Reason != `node "n1" has no affinity record for it` {
		t.Fatalf("orphaned blocks = %+v, %v", r.OrphanedBlocks, err)
	}
}
