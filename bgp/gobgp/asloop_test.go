package gobgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/tabbynet/tabby/bgp"
)

// A path whose AS path already holds this node's AS is an AS loop: the
// speaker drops it as BIRD does, so it shows as received but not accepted
// and never reaches the learned routes. That is what a rack mate's block
// looks like when the ToR's as-override did not replace the rack's AS (the
// lab's FRR did that to one rack when one update group served two racks).
// numAllowedLocalASNumbers (PeerConfig.AllowOwnAS) lets such paths in.
func TestOwnASInPathIsDropped(t *testing.T) {
	l := newLab(t)
	const rackAS, torAS, otherRackAS = 65002, 65000, 65001
	node, torAddr := l.addr(1), l.addr(2)
	mate, other := netip.MustParsePrefix("10.65.1.0/26"), netip.MustParsePrefix("10.65.2.0/26")

	// The ToR: plain GoBGP, passive, sending two paths as if it had
	// learned them from a rack mate (AS path "65002") and from another
	// rack ("65001"); on the way out it prepends its own AS.
	tor := server.NewBgpServer(server.LoggerOption(l.logs.logger("tor"), nil))
	go tor.Serve()
	ctx := context.Background()
	if err := tor.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: torAS, RouterId: torAddr.String(), ListenPort: int32(l.port), ListenAddresses: []string{torAddr.String()},
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tor.StopBgp(context.Background(), &api.StopBgpRequest{}); tor.Stop() })
	if err := tor.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		// GoBGP, unlike FRR, will not send a path holding the peer's AS
		// unless told to (it is what as-override would have replaced).
		Conf:      &api.PeerConf{NeighborAddress: node.String(), PeerAsn: rackAS, AllowAspathLoopLocal: true},
		Transport: &api.Transport{LocalAddress: torAddr.String(), PassiveMode: true},
	}}); err != nil {
		t.Fatal(err)
	}
	var paths []*apiutil.Path
	for prefix, as := range map[netip.Prefix]uint32{mate: rackAS, other: otherRackAS} {
		nlri, err := gobgppkt.NewIPAddrPrefix(prefix)
		if err != nil {
			t.Fatal(err)
		}
		nh, err := gobgppkt.NewPathAttributeNextHop(torAddr)
		if err != nil {
			t.Fatal(err)
		}
		asPath := gobgppkt.NewPathAttributeAsPath([]gobgppkt.AsPathParamInterface{gobgppkt.NewAs4PathParam(gobgppkt.BGP_ASPATH_ATTR_TYPE_SEQ, []uint32{as})})
		paths = append(paths, &apiutil.Path{Family: gobgppkt.RF_IPv4_UC, Nlri: nlri,
			Attrs: []gobgppkt.PathAttributeInterface{gobgppkt.NewPathAttributeOrigin(gobgppkt.BGP_ORIGIN_ATTR_TYPE_IGP), nh, asPath}})
	}
	if _, err := tor.AddPath(apiutil.AddPathRequest{Paths: paths}); err != nil {
		t.Fatal(err)
	}

	opts := l.opts("node")
	opts.GoBGPLogLevel = slog.LevelError
	n := &member{name: "node", addr: node, sp: New(opts)}
	if err := n.sp.Start(ctx, bgp.GlobalConfig{RouterID: node, ASN: rackAS, ListenPort: -1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.sp.Stop(false) })
	n.sp.SetPolicy(bgp.Policy{Pools: l.pools})
	peer := bgp.PeerConfig{Address: torAddr, Port: uint16(l.port), ASN: torAS, Type: bgp.PeerTypeNode, LocalAddress: node}
	n.sp.SetPeers([]bgp.PeerConfig{peer})

	counts := func(received, accepted uint64) func() string {
		return func() string {
			st := statusOf(t, n)
			if len(st) != 1 || !st[0].Established() || st[0].RoutesReceived != received || st[0].RoutesAccepted != accepted {
				return fmt.Sprintf("status %+v, want established, %d received, %d accepted", st, received, accepted)
			}
			return ""
		}
	}
	eventually(t, settle, "the looped path is received, not accepted", counts(2, 1))
	eventually(t, settle, "only the other rack's block is learned", wantLearned(n, via(other, torAddr)))

	peer.AllowOwnAS = 1
	n.sp.SetPeers([]bgp.PeerConfig{peer})
	eventually(t, settle, "with the own AS allowed once, both are accepted", counts(2, 2))
	eventually(t, settle, "and learned", wantLearned(n, via(mate, torAddr), via(other, torAddr)))
}
