package gobgp

import (
	"context"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	tbgp "github.com/tabbynet/tabby/bgp"
)

// TestLearnThroughput measures how long a node takes to learn N prefixes
// from a peer that has them all when the session comes up (the shape of
// `make bench`: a router pushing a full table into a fresh node), through
// the consumer's TakeRouteChanges, and to drop them on withdrawal. It only
// reports figures; it runs when TABBY_BGP_BENCH is set (to N, or 1 for
// 100000). Both speakers share this process's two cores, so the figures
// are pessimistic for the receiver alone.
func TestLearnThroughput(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("TABBY_BGP_BENCH"))
	if n == 0 {
		t.Skip("set TABBY_BGP_BENCH=<prefixes> (1 means 100000) to measure")
	}
	if n == 1 {
		n = 100000
	}
	l := newLab(t)
	l.pools = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	l.addNode(1, nil)
	l.addNode(2, nil)
	recv, send := l.start(1), l.start(2)

	ads := make([]tbgp.Advertisement, n)
	for i := range ads {
		ads[i] = tbgp.Advertisement{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32), NextHop: send.addr}
	}
	send.sp.SetPolicy(tbgp.Policy{Pools: l.pools})
	t0 := time.Now()
	send.sp.SetAdvertisements(ads)
	eventually(t, 5*time.Minute, "sender holds the table", func() string {
		if localPaths(t, send) == n {
			return ""
		}
		return "loading"
	})
	t.Logf("sender: %d local paths added in %s", n, time.Since(t0))

	recv.sp.SetPolicy(tbgp.Policy{Pools: l.pools, OwnBlocks: []netip.Prefix{block(1)}})
	_, _ = recv.sp.TakeRouteChanges()
	l.configure(recv)
	send.sp.SetPeers(peersOf(t, l, send))

	var up time.Time
	total := 0
	deadline := time.Now().Add(5 * time.Minute)
	for total < n && time.Now().Before(deadline) {
		if up.IsZero() {
			if st := statusOf(t, recv); len(st) == 1 && st[0].Established() {
				up = time.Now()
			}
		}
		select {
		case <-recv.sp.RouteChanges():
			c, _ := recv.sp.TakeRouteChanges()
			total += len(c)
		case <-time.After(10 * time.Millisecond):
		}
	}
	learnedAt := time.Now()
	if total < n {
		t.Fatalf("learned %d of %d", total, n)
	}
	t.Logf("receiver: %d prefixes learned %s after the session came up", n, learnedAt.Sub(up))

	t1 := time.Now()
	send.sp.SetAdvertisements(nil)
	gone := 0
	for gone < n && time.Now().Before(deadline) {
		<-recv.sp.RouteChanges()
		_, w := recv.sp.TakeRouteChanges()
		gone += len(w)
	}
	t.Logf("receiver: %d prefixes withdrawn %s after the sender's withdrawal started", gone, time.Since(t1))
}

func localPaths(t *testing.T, m *member) int {
	res, err := m.sp.srvHandle().GetTable(context.Background(), &api.GetTableRequest{
		TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: apiutil.ToApiFamily(bgp.AFI_IP, bgp.SAFI_UNICAST),
	})
	if err != nil {
		t.Fatal(err)
	}
	return int(res.NumPath)
}

func peersOf(t *testing.T, l *lab, m *member) []tbgp.PeerConfig {
	t.Helper()
	return []tbgp.PeerConfig{{
		Address: l.addr(1), Port: uint16(l.port), ASN: tbgp.DefaultASNumber, Type: tbgp.PeerTypeMesh,
		ClusterInternal: true, LocalAddress: m.addr, Passive: l.addr(1).String() > m.addr.String(),
	}}
}
