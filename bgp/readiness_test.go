package bgp

import (
	"net/netip"
	"testing"
	"time"
)

func TestReadiness(t *testing.T) {
	up := func(a string) PeerStatus { return PeerStatus{Address: netip.MustParseAddr(a), State: StateEstablished} }
	down := func(a string) PeerStatus { return PeerStatus{Address: netip.MustParseAddr(a), State: StateActive} }
	grace := time.Minute
	for _, tc := range []struct {
		name    string
		peers   []PeerStatus
		running time.Duration
		ready   bool
		detail  string
	}{
		{"no peers", nil, 0, true, ""},
		{"all up early", []PeerStatus{up("10.0.0.2"), up("10.0.0.3")}, time.Second, true, ""},
		{"one down early", []PeerStatus{up("10.0.0.2"), down("10.0.0.3"), down("10.0.0.10")}, time.Second, false, "BGP not established with 10.0.0.10,10.0.0.3"},
		{"one down late", []PeerStatus{up("10.0.0.2"), down("10.0.0.3")}, 2 * time.Minute, true, "BGP not established with 10.0.0.3"},
		{"all down late", []PeerStatus{down("10.0.0.2")}, 2 * time.Minute, false, "BGP not established with 10.0.0.2"},
	} {
		ready, detail := Readiness(tc.peers, tc.running, grace)
		if ready != tc.ready || detail != tc.detail {
			t.Errorf("%s: Readiness = %v, %q; want %v, %q", tc.name, ready, detail, tc.ready, tc.detail)
		}
	}
}
