package controller

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/tabbynet/tabby/bgp"
)

func rt(prefix, nh string) bgp.Route {
	return bgp.Route{Prefix: netip.MustParsePrefix(prefix), NextHop: netip.MustParseAddr(nh)}
}

// takeText renders a take as "+prefix via nh" and "-prefix", sorted.
func takeText(r *relay) string {
	changed, withdrawn := r.take()
	var out []string
	for _, c := range changed {
		out = append(out, fmt.Sprintf("+%s via %s", c.Prefix, c.NextHop))
	}
	for _, w := range withdrawn {
		out = append(out, "-"+w.String())
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestRelay(t *testing.T) {
	r := newRelay()
	r.setSelf(netip.MustParseAddr("10.0.0.1"))

	// A path whose next hop is this node never reaches the consumer.
	r.apply([]bgp.Route{rt("10.65.2.0/26", "10.0.0.2"), rt("10.65.1.0/26", "10.0.0.1")}, nil)
	if got, want := takeText(r), "+10.65.2.0/26 via 10.0.0.2"; got != want {
		t.Fatalf("take = %q, want %q", got, want)
	}
	// Nothing new: nothing to take; the same route again is no change.
	r.apply([]bgp.Route{rt("10.65.2.0/26", "10.0.0.2")}, nil)
	if got := takeText(r); got != "" {
		t.Fatalf("take after a repeat = %q", got)
	}
	// A route moving to this node as next hop is withdrawn from the consumer.
	r.apply([]bgp.Route{rt("10.65.2.0/26", "10.0.0.1")}, nil)
	if got, want := takeText(r), "-10.65.2.0/26"; got != want {
		t.Fatalf("take = %q, want %q", got, want)
	}

	// A replacement (a new speaker's synced view) withdraws only what the
	// new view lacks and changes only what differs.
	r.apply([]bgp.Route{rt("10.65.3.0/26", "10.0.0.3"), rt("10.65.4.0/26", "10.0.0.4")}, nil)
	takeText(r)
	r.replace(map[netip.Prefix]bgp.Route{
		netip.MustParsePrefix("10.65.3.0/26"): rt("10.65.3.0/26", "10.0.0.3"),
		netip.MustParsePrefix("10.65.5.0/26"): rt("10.65.5.0/26", "10.0.0.5"),
	})
	if got, want := takeText(r), "+10.65.5.0/26 via 10.0.0.5 -10.65.4.0/26"; got != want {
		t.Fatalf("take after replace = %q, want %q", got, want)
	}

	select {
	case <-r.synced:
		t.Fatal("synced before markSynced")
	default:
	}
	r.markSynced()
	r.markSynced() // idempotent
	<-r.synced
}
