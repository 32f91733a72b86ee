package ipam

import (
	"net/netip"
	"reflect"
	"testing"

	v3 "github.com/tabbynet/tabby/api/v3"
)

func cachedBlock(cidr, node, rv string, free int) *v3.IPAMBlock {
	rec := newBlock(netip.MustParsePrefix(cidr), node, false, testNow)
	rec.ResourceVersion = rv
	rec.Spec.Unallocated = rec.Spec.Unallocated[:free]
	for o := free; o < len(rec.Spec.Allocations); o++ {
		rec.Spec.Attributes = []v3.AllocationAttribute{{Secondary: map[string]string{"node": node}}}
		zero := 0
		rec.Spec.Allocations[o] = &zero
	}
	return rec
}

// The cache hands out copies, keeps the newest version it was given, and
// forgets what is dropped.
func TestBlockCacheCopiesAndVersions(t *testing.T) {
	c := newBlockCache()
	c.put(cachedBlock("10.0.0.0/26", "n1", "7", 3))
	c.put(cachedBlock("10.0.0.0/26", "n1", "5", 10)) // older: ignored
	b := c.get("10-0-0-0-26")
	if b == nil || b.rec.ResourceVersion != "7" || b.free() != 3 {
		t.Fatalf("cached %+v, want version 7 with 3 free", b)
	}
	b.autoAssign(2, "h", map[string]string{"pod": "p"}) // a working copy: the cache must not see this
	if again := c.get("10-0-0-0-26"); again.free() != 3 || !reflect.DeepEqual(again.rec.Spec.Attributes, cachedBlock("10.0.0.0/26", "n1", "7", 3).Spec.Attributes) {
		t.Fatalf("changing a copy changed the cache: %d free, attributes %v", again.free(), again.rec.Spec.Attributes)
	}
	if got := c.withRoom("n1", 4, []pool{{cidr: netip.MustParsePrefix("10.0.0.0/16")}}); len(got) != 1 {
		t.Fatalf("withRoom = %d blocks, want 1", len(got))
	}
	if got := c.withRoom("n2", 4, nil); len(got) != 0 {
		t.Fatalf("withRoom for another node = %d blocks", len(got))
	}
	c.drop("10-0-0-0-26")
	if c.get("10-0-0-0-26") != nil {
		t.Fatal("dropped block still cached")
	}
}

// A burst of requests does not all guess the same block: each guess
// reserves its addresses until the request is finished.
func TestBlockCacheReservations(t *testing.T) {
	c := newBlockCache()
	c.put(cachedBlock("10.0.0.0/26", "n1", "1", 1))
	c.put(cachedBlock("10.0.0.64/26", "n1", "2", 2))
	p1, ok1 := c.reserveFirst("n1", 4, 1)
	p2, ok2 := c.reserveFirst("n1", 4, 1)
	p3, ok3 := c.reserveFirst("n1", 4, 1)
	_, ok4 := c.reserveFirst("n1", 4, 1)
	if !ok1 || !ok2 || !ok3 || ok4 || p1.String() != "10.0.0.0/26" || p2.String() != "10.0.0.64/26" || p3 != p2 {
		t.Fatalf("guesses %v %v %v %v %v %v, %v; want the first block once, the second twice, then none", p1, ok1, p2, ok2, p3, ok3, ok4)
	}
	c.unreserve(p1, 1)
	if p, ok := c.reserveFirst("n1", 4, 1); !ok || p != p1 {
		t.Fatalf("after the first request finished: %v %v, want %v", p, ok, p1)
	}
	if _, ok := c.reserveFirst("n1", 6, 1); ok {
		t.Fatal("an IPv4 block was guessed for IPv6")
	}
}
