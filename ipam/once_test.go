package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

// AssignOnce gives a handle its addresses once: the same handle again gets
// the same addresses back and nothing more is allocated, whether or not the
// first call found a cached block to count the handle early for.
func TestAssignOnce(t *testing.T) {
	ds := newStore(t)
	createPool(t, ds, "v4", "10.0.0.0/24")
	createPool(t, ds, "v6", "fd00::/120")
	counted := &countingStore{Interface: ds}
	m := newIPAM(t, counted)
	args := func(h string) AssignArgs { return AssignArgs{Num4: 1, Num6: 1, HandleID: h, Node: "n1"} }

	for _, h := range []string{"k8s-pod-network.cold", "k8s-pod-network.warm"} { // first: no cached block yet
		v4, v6, existing, err := m.AssignOnce(testCtx(t), args(h))
		if err != nil || existing || len(v4) != 1 || len(v6) != 1 {
			t.Fatalf("%s: first AssignOnce = %v %v existing=%v %v", h, v4, v6, existing, err)
		}
		counted.reset()
		again4, again6, existing, err := m.AssignOnce(testCtx(t), args(h))
		if err != nil || !existing || !slices.Equal(again4, v4) || !slices.Equal(again6, v6) {
			t.Fatalf("%s: second AssignOnce = %v %v existing=%v %v; want %v %v existing", h, again4, again6, existing, err, v4, v6)
		}
		if w := counted.writes.Load(); w != 1 { // the failed create of the handle
			t.Errorf("%s: second AssignOnce wrote %d times, want only the handle create that found it", h, w)
		}
	}
	s := checkInvariants(t, m)
	if len(s.byAddr) != 4 {
		t.Fatalf("%d addresses allocated, want 4", len(s.byAddr))
	}
	if _, _, _, err := m.AssignOnce(testCtx(t), AssignArgs{Num4: 1, Node: "n1"}); err == nil {
		t.Error("AssignOnce without a handle succeeded")
	}
}

// The handle counted ahead of the block write for the node's cached block
// is taken back when the request ends up elsewhere (here: it names another
// pool), so the handle counts exactly what the blocks hold.
func TestEarlyCountOfAWrongGuessIsTakenBack(t *testing.T) {
	ds := newStore(t)
	createPool(t, ds, "a", "10.0.0.0/24")
	createPool(t, ds, "b", "10.1.0.0/24")
	m := newIPAM(t, ds)
	assign(t, m, "n1", "k8s-pod-network.first", 1) // the cache now holds a block of pool a
	for _, once := range []bool{false, true} {
		h := fmt.Sprintf("k8s-pod-network.in-b-%v", once)
		a := AssignArgs{Num4: 1, HandleID: h, Node: "n1", IPv4Pools: []string{"b"}}
		var v4 []netip.Prefix
		var err error
		if once {
			v4, _, _, err = m.AssignOnce(testCtx(t), a)
		} else {
			v4, _, err = m.AutoAssign(testCtx(t), a)
		}
		if err != nil || len(v4) != 1 || !netip.MustParsePrefix("10.1.0.0/24").Contains(v4[0].Addr()) {
			t.Fatalf("assign from pool b (once=%v): %v %v", once, v4, err)
		}
	}
	s := checkInvariants(t, m) // handle counts match the blocks
	if len(s.handles) != 3 {
		t.Fatalf("%d handles, want 3", len(s.handles))
	}
	for _, h := range s.handles {
		if len(h.Spec.Block) != 1 {
			t.Errorf("handle %s counts blocks %v, want only the one it holds an address in", h.Spec.HandleID, h.Spec.Block)
		}
	}
	if len(m.blocks.reserved) != 0 {
		t.Errorf("reservations left after every request finished: %v", m.blocks.reserved)
	}
}
