package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestToRAnyJoinOrder: whichever rack's member reaches the ToR first,
// every member of every rack gets its rack mate's prefix and the other
// rack's. BIRD stands in for the nodes (it drops AS loops as Tabby's
// speaker does). A member of rack 1 connects first and the others only
// once it is up: with one update group for every neighbor, FRR would apply
// as-override with rack 1's AS to everyone, and rack 0's members would get
// each other's prefixes with their own AS in the path and drop them (the
// lab's "a rack mate's block sometimes never reaches the kernel").
func TestToRAnyJoinOrder(t *testing.T) {
	requireNetNS(t)
	requireTool(t, "bird")
	requireTool(t, filepath.Join(frrDaemonDir, "bgpd"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, err := New(ctx, Options{Topology: TopologyToR, Nodes: 4, Racks: 2, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	const password = "lab-md5"
	type member struct {
		p      *Peer
		prefix netip.Prefix
	}
	// Rack 1 first: the order in which they start.
	var members []member
	for i, rack := range []int{1, 1, 0, 0} {
		p, err := l.AddPeer(ctx, fmt.Sprintf("r%dm%d", rack, i), rack)
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, member{p: p, prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 250, byte(rack), byte(10 + i)}), 32)})
	}
	var neighbors []FRRNeighbor
	for _, m := range members {
		neighbors = append(neighbors, RackNeighbor(m.p.IP, ToRRackAS(m.p.Rack), password, false))
	}
	if err := l.ToR.Start(ctx, FRRConfig{Neighbors: neighbors}); err != nil {
		t.Fatal(err)
	}
	start := func(m member) {
		t.Helper()
		err := m.p.StartBIRD(ctx, BIRDConfig{
			Kernel: true,
			Static: []netip.Prefix{m.prefix},
			Peers: []BIRDPeer{{Name: "tor", Local: m.p.IP, LocalAS: ToRRackAS(m.p.Rack), Addr: ToRAddr(m.p.Rack), AS: ToRAS,
				Password: password, Export: "static"}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	established := func(ms ...member) func() error {
		return func() error {
			st, err := l.ToR.FRR.Peers(ctx)
			if err != nil {
				return err
			}
			for _, m := range ms {
				if s := st[m.p.IP]; s.State != "Established" || s.PfxRcd != 1 {
					return fmt.Errorf("ToR's session with %s: %+v", m.p.Name, s)
				}
			}
			return nil
		}
	}
	start(members[0])
	if err := waitFor(ctx, time.Minute, established(members[0])); err != nil {
		t.Fatal(err)
	}
	for _, m := range members[1:] {
		start(m)
	}
	if err := waitFor(ctx, time.Minute, established(members...)); err != nil {
		t.Fatal(err)
	}

	// Every member's kernel (BIRD exports what it accepted) holds the
	// three other prefixes.
	err = waitFor(ctx, time.Minute, func() error {
		var missing []string
		for _, m := range members {
			rs, err := m.p.NS.Routes(int(birdProtocol))
			if err != nil {
				return err
			}
			have := map[netip.Prefix]bool{}
			for _, r := range rs {
				have[r.Dst] = true
			}
			for _, o := range members {
				if o != m && !have[o.prefix] {
					missing = append(missing, fmt.Sprintf("%s lacks %s of %s (rack %d)", m.p.Name, o.prefix, o.p.Name, o.p.Rack))
				}
			}
		}
		if len(missing) > 0 {
			return errors.New(strings.Join(missing, "; "))
		}
		return nil
	})
	if err != nil {
		groups, _ := l.ToR.FRR.Vtysh(ctx, "show bgp ipv4 unicast update-groups")
		adv, _ := l.ToR.FRR.Vtysh(ctx, "show bgp ipv4 unicast neighbors "+members[2].p.IP.String()+" advertised-routes")
		t.Fatalf("%v\nToR's update groups:\n%s\nsent to %s:\n%s", err, groups, members[2].p.Name, adv)
	}
}
