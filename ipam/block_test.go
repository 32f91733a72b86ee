package ipam

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	v3 "github.com/tabbynet/tabby/api/v3"
)

// Pure tests of the block bitmap maths; the datastore-backed behaviour is in
// ipam_test.go.

func mustBlock(t *testing.T, cidr, node string) *blockState {
	t.Helper()
	b, err := decodeBlock(newBlock(netip.MustParsePrefix(cidr), node, false, time.Unix(1000, 0)))
	if err != nil {
		t.Fatalf("decode new block %s: %v", cidr, err)
	}
	return b
}

func TestNames(t *testing.T) {
	for _, c := range []struct{ cidr, want string }{
		{"10.0.0.0/26", "10-0-0-0-26"},
		{"192.168.65.192/26", "192-168-65-192-26"},
		{"fd00::40/122", "fd00--40-122"},
		{"2001:db8:1:2::/122", "2001-db8-1-2---122"},
	} {
		if got := blockName(netip.MustParsePrefix(c.cidr)); got != c.want {
			t.Errorf("blockName(%s) = %q, want %q", c.cidr, got, c.want)
		}
	}
	if got := affinityName("node-1", netip.MustParsePrefix("10.0.0.64/26")); got != "node-1-10-0-0-64-26" {
		t.Errorf("affinityName = %q", got)
	}
	long := strings.Repeat("n", 300)
	a, b := affinityName(long, netip.MustParsePrefix("10.0.0.0/26")), affinityName(long, netip.MustParsePrefix("10.0.0.64/26"))
	if len(a) > 253 || len(b) > 253 || a == b {
		t.Errorf("long affinity names must be <= 253 chars and distinct: %d %d equal=%v", len(a), len(b), a == b)
	}
	if handleName("k8s-pod-network.ABC") != "k8s-pod-network.abc" {
		t.Errorf("handleName must lower-case")
	}
}

func TestOrdinalsV4AndV6(t *testing.T) {
	for _, c := range []struct {
		cidr  string
		size  int
		first string
		last  string
	}{
		{"10.1.2.64/26", 64, "10.1.2.64", "10.1.2.127"},
		{"10.1.16.0/20", 4096, "10.1.16.0", "10.1.31.255"},
		{"10.1.2.7/32", 1, "10.1.2.7", "10.1.2.7"},
		{"fd00:1::1:40/122", 64, "fd00:1::1:40", "fd00:1::1:7f"},
		{"fd00::f000/116", 4096, "fd00::f000", "fd00::ffff"},
	} {
		b := mustBlock(t, c.cidr, "n1")
		if b.size() != c.size || b.free() != c.size {
			t.Fatalf("%s: size %d free %d, want %d", c.cidr, b.size(), b.free(), c.size)
		}
		if got := b.addrOf(0).String(); got != c.first {
			t.Errorf("%s: first = %s, want %s", c.cidr, got, c.first)
		}
		if got := b.addrOf(c.size - 1).String(); got != c.last {
			t.Errorf("%s: last = %s, want %s", c.cidr, got, c.last)
		}
		for _, ord := range []int{0, c.size / 2, c.size - 1} {
			o, ok := b.ordinalOf(b.addrOf(ord))
			if !ok || o != ord {
				t.Errorf("%s: ordinalOf(addrOf(%d)) = %d, %v", c.cidr, ord, o, ok)
			}
		}
		outside := netip.MustParsePrefix(c.cidr).Addr().Prev()
		if _, ok := b.ordinalOf(outside); ok {
			t.Errorf("%s: %s must not be in the block", c.cidr, outside)
		}
	}
}

func TestAutoAssignFIFOReuse(t *testing.T) {
	b := mustBlock(t, "10.0.0.0/29", "n1")
	attrs := map[string]string{"pod": "p"}
	first := b.autoAssign(3, "h1", attrs)
	if !slices.Equal(first, []int{0, 1, 2}) {
		t.Fatalf("first assignment = %v, want [0 1 2]", first)
	}
	if len(b.rec.Spec.Attributes) != 1 {
		t.Fatalf("one request must share one attribute, got %d", len(b.rec.Spec.Attributes))
	}
	// Free .1: it goes to the tail, so the next two allocations get .3 and .4.
	r := b.release([]releaseReq{{ord: 1}})
	if !slices.Equal(r.released, []int{1}) || r.byHandle["h1"] != 1 {
		t.Fatalf("release = %+v", r)
	}
	next := b.autoAssign(2, "h2", nil)
	if !slices.Equal(next, []int{3, 4}) {
		t.Fatalf("after release, got %v, want [3 4] (freed address reused last)", next)
	}
	rest := b.autoAssign(10, "h3", nil)
	if !slices.Equal(rest, []int{5, 6, 7, 1}) {
		t.Fatalf("remaining = %v, want [5 6 7 1]", rest)
	}
	if b.free() != 0 || b.inUse() != 8 {
		t.Fatalf("full block: free %d inUse %d", b.free(), b.inUse())
	}
	if got := b.autoAssign(1, "h4", nil); got != nil {
		t.Fatalf("full block assigned %v", got)
	}
}

func TestReleaseChecksHandleAndSequence(t *testing.T) {
	b := mustBlock(t, "10.0.0.0/30", "n1")
	seqA := b.rec.Spec.SequenceNumber
	b.autoAssign(1, "a", nil) // ordinal 0
	b.rec.Spec.SequenceNumber++
	if b.seqOf(0) != seqA {
		t.Fatalf("allocation must record the sequence number it was made at")
	}
	// Release and reallocate ordinal 0 to handle b: it gets a new number.
	b.release([]releaseReq{{ord: 0}})
	b.rec.Spec.SequenceNumber++
	b.autoAssign(3, "x", nil) // 1, 2, 3
	b.rec.Spec.SequenceNumber++
	seqB := b.rec.Spec.SequenceNumber
	if o := b.autoAssign(1, "b", nil); !slices.Equal(o, []int{0}) {
		t.Fatalf("expected ordinal 0 reused, got %v", o)
	}
	if b.seqOf(0) != seqB || seqB == seqA {
		t.Fatalf("reused address must carry a new sequence number: %d vs %d", b.seqOf(0), seqA)
	}
	// A stale release (old sequence number or old handle) leaves it alone.
	r := b.release([]releaseReq{{ord: 0, seq: &seqA}})
	if len(r.released) != 0 || !slices.Equal(r.stale, []int{0}) {
		t.Fatalf("stale sequence release = %+v", r)
	}
	r = b.release([]releaseReq{{ord: 0, handle: "a"}})
	if len(r.released) != 0 || !slices.Equal(r.stale, []int{0}) {
		t.Fatalf("stale handle release = %+v", r)
	}
	r = b.release([]releaseReq{{ord: 0, handle: "b", seq: &seqB}, {ord: 0}})
	if !slices.Equal(r.released, []int{0}) {
		t.Fatalf("matching release = %+v", r)
	}
	// Releasing it again is a no-op.
	r = b.release([]releaseReq{{ord: 0}})
	if len(r.released) != 0 || !slices.Equal(r.unallocated, []int{0}) {
		t.Fatalf("second release = %+v", r)
	}
	if _, ok := b.rec.Spec.SequenceNumberForAllocation["0"]; ok {
		t.Fatalf("a freed address must drop its sequence number")
	}
}

func TestAttributesCompactedOnRelease(t *testing.T) {
	b := mustBlock(t, "10.0.0.0/29", "n1")
	b.autoAssign(2, "a", map[string]string{"pod": "a"}) // 0,1 attr 0
	b.autoAssign(2, "b", map[string]string{"pod": "b"}) // 2,3 attr 1
	b.autoAssign(1, "c", map[string]string{"pod": "c"}) // 4   attr 2
	if got := b.releaseHandle("b"); !slices.Equal(got, []int{2, 3}) {
		t.Fatalf("releaseHandle(b) = %v", got)
	}
	if len(b.rec.Spec.Attributes) != 2 {
		t.Fatalf("attributes after release = %d, want 2", len(b.rec.Spec.Attributes))
	}
	if b.handleOf(4) != "c" || b.handleOf(0) != "a" || b.handleOf(1) != "a" {
		t.Fatalf("renumbering broke handles: %q %q %q", b.handleOf(0), b.handleOf(1), b.handleOf(4))
	}
	if at, _ := b.attr(4); at.Secondary["pod"] != "c" {
		t.Fatalf("attribute of ordinal 4 = %v", at.Secondary)
	}
	if got := b.countByHandle(); got["a"] != 2 || got["c"] != 1 || len(got) != 2 {
		t.Fatalf("countByHandle = %v", got)
	}
}

func TestAssignSpecificAddress(t *testing.T) {
	b := mustBlock(t, "10.0.0.0/29", "n1")
	if err := b.assign(5, "h", nil); err != nil {
		t.Fatal(err)
	}
	if err := b.assign(5, "h2", nil); err != errAddressInUse {
		t.Fatalf("second assign of the same address: %v", err)
	}
	if got := b.autoAssign(8, "x", nil); slices.Contains(got, 5) || len(got) != 7 {
		t.Fatalf("auto-assign after assign(5) = %v", got)
	}
}

func TestDecodeRejectsInconsistentBlocks(t *testing.T) {
	good := func() *v3.IPAMBlock {
		return newBlock(netip.MustParsePrefix("10.0.0.0/30"), "n", false, time.Unix(1, 0))
	}
	one := 0
	cases := map[string]func(b *v3.IPAMBlock){
		"bad cidr":          func(b *v3.IPAMBlock) { b.Spec.CIDR = "10.0.0.0/33" },
		"unmasked cidr":     func(b *v3.IPAMBlock) { b.Spec.CIDR = "10.0.0.1/30" },
		"wrong slot count":  func(b *v3.IPAMBlock) { b.Spec.Allocations = b.Spec.Allocations[:3] },
		"missing attribute": func(b *v3.IPAMBlock) { b.Spec.Allocations[0] = &one; b.Spec.Unallocated = []int{1, 2, 3} },
		"free and allocated": func(b *v3.IPAMBlock) {
			zero := 0
			b.Spec.Attributes = []v3.AllocationAttribute{{}}
			b.Spec.Allocations[0] = &zero
		},
		"repeated free ordinal":     func(b *v3.IPAMBlock) { b.Spec.Unallocated = []int{0, 0, 1, 2} },
		"free ordinal out of range": func(b *v3.IPAMBlock) { b.Spec.Unallocated = []int{0, 1, 2, 4} },
		"block too big":             func(b *v3.IPAMBlock) { b.Spec.CIDR = "10.0.0.0/16" },
	}
	for name, mutate := range cases {
		b := good()
		mutate(b)
		if _, err := decodeBlock(b); err == nil {
			t.Errorf("%s: decode accepted an inconsistent block", name)
		}
	}
	if _, err := decodeBlock(good()); err != nil {
		t.Fatalf("good block rejected: %v", err)
	}
}

// The JSON a new block produces has Calico's shape.
func TestNewBlockJSON(t *testing.T) {
	rec := newBlock(netip.MustParsePrefix("10.0.0.4/30"), "n1", true, time.Unix(0, 42))
	b, _ := decodeBlock(rec)
	b.autoAssign(1, "k8s-pod-network.c1", map[string]string{"pod": "p"})
	js, err := json.Marshal(rec.Spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"cidr":"10.0.0.4/30"`, `"affinity":"host:n1"`, `"strictAffinity":true`,
		`"allocations":[0,null,null,null]`, `"unallocated":[1,2,3]`,
		`"attributes":[{"handle_id":"k8s-pod-network.c1","secondary":{"pod":"p"}}]`,
		`"sequenceNumber":42`, `"sequenceNumberForAllocation":{"0":42}`,
	} {
		if !strings.Contains(string(js), want) {
			t.Errorf("block JSON lacks %s:\n%s", want, js)
		}
	}
}
