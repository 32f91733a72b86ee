package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

func TestAutoAssignReleaseRoundTripV4V6(t *testing.T) {
	ds := newStore(t)
	ctx := testCtx(t)
	createPool(t, ds, "v4", "10.0.0.0/24")
	createPool(t, ds, "v6", "fd00::/120")
	m := newIPAM(t, ds)

	v4, v6, err := m.AutoAssign(ctx, AssignArgs{Num4: 2, Num6: 2, HandleID: "k8s-pod-network.c1", Node: "n1",
		Attrs: map[string]string{AttributeNamespace: "default", AttributePod: "p1"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.0/26", "10.0.0.1/26"}; fmt.Sprint(v4) != fmt.Sprint(want) {
		t.Fatalf("v4 = %v, want %v (first block, first addresses, block prefix length)", v4, want)
	}
	if want := []string{"fd00::/122", "fd00::1/122"}; fmt.Sprint(v6) != fmt.Sprint(want) {
		t.Fatalf("v6 = %v, want %v", v6, want)
	}
	ips, err := m.IPsByHandle(ctx, "k8s-pod-network.c1")
	if err != nil || len(ips) != 4 {
		t.Fatalf("IPsByHandle = %v, %v", ips, err)
	}
	info, err := m.AllocationInfo(ctx, netip.MustParseAddr("fd00::1"))
	if err != nil {
		t.Fatal(err)
	}
	if info.HandleID != "k8s-pod-network.c1" || info.Attrs[AttributePod] != "p1" || info.Attrs[AttributeNode] != "n1" ||
		info.Attrs[AttributeTimestamp] == "" || info.BlockNode != "n1" || info.Borrowed || info.Block.String() != "fd00::/122" {
		t.Fatalf("allocation info = %+v", info)
	}
	blocks, err := m.BlocksForNode(ctx, "n1")
	if err != nil || fmt.Sprint(blocks) != "[10.0.0.0/26 fd00::/122]" {
		t.Fatalf("BlocksForNode = %v, %v", blocks, err)
	}
	checkInvariants(t, m)

	if err := m.ReleaseByHandle(ctx, "k8s-pod-network.c1"); err != nil {
		t.Fatal(err)
	}
	if ips, _ := m.IPsByHandle(ctx, "k8s-pod-network.c1"); len(ips) != 0 {
		t.Fatalf("after release, handle holds %v", ips)
	}
	if _, err := m.AllocationInfo(ctx, netip.MustParseAddr("10.0.0.1")); !errors.Is(err, ErrNotAllocated) {
		t.Fatalf("AllocationInfo after release: %v", err)
	}
	s := checkInvariants(t, m)
	if len(s.handles) != 0 || len(s.byAddr) != 0 {
		t.Fatalf("after release: handles %d, allocations %d", len(s.handles), len(s.byAddr))
	}
	// Empty blocks stay with their node.
	if blocks, _ := m.BlocksForNode(ctx, "n1"); len(blocks) != 2 {
		t.Fatalf("empty blocks must stay affine, BlocksForNode = %v", blocks)
	}
	// Releasing again, by handle or by address, is success.
	if err := m.ReleaseByHandle(ctx, "k8s-pod-network.c1"); err != nil {
		t.Fatalf("second ReleaseByHandle: %v", err)
	}
	un, err := m.ReleaseIPs(ctx, v4[0].Addr(), v6[1].Addr(), netip.MustParseAddr("192.168.9.9"))
	if err != nil || len(un) != 3 {
		t.Fatalf("ReleaseIPs of free addresses = %v, %v", un, err)
	}
	// The freed addresses are reused last.
	again := assign(t, m, "n1", "k8s-pod-network.c2", 1)
	if again[0].String() != "10.0.0.2/26" {
		t.Fatalf("next address = %s, want 10.0.0.2/26 (freed ones go to the back)", again[0])
	}
}

func TestConcurrentAssignOneNode(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared-instance=%v", shared), func(t *testing.T) {
			ds := newStore(t)
			createPool(t, ds, "p", "10.0.0.0/24")
			one := newIPAM(t, ds)
			const n = 50
			var wg sync.WaitGroup
			errs := make(chan error, n)
			got := make(chan netip.Prefix, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					m := one
					if !shared {
						m = newIPAM(t, ds) // separate allocators: only the datastore CAS serialises them
					}
					v4, _, err := m.AutoAssign(testCtx(t), AssignArgs{Num4: 1, HandleID: fmt.Sprintf("k8s-pod-network.c%d", i), Node: "n1"})
					if err != nil {
						errs <- err
						return
					}
					got <- v4[0]
				}()
			}
			wg.Wait()
			close(errs)
			close(got)
			for err := range errs {
				t.Error(err)
			}
			seen := map[netip.Addr]bool{}
			for p := range got {
				if seen[p.Addr()] {
					t.Errorf("address %s handed out twice", p)
				}
				seen[p.Addr()] = true
			}
			if len(seen) != n {
				t.Fatalf("got %d distinct addresses, want %d", len(seen), n)
			}
			s := checkInvariants(t, one)
			if len(s.byAddr) != n || len(s.handles) != n {
				t.Fatalf("records: %d allocations, %d handles", len(s.byAddr), len(s.handles))
			}
		})
	}
}

func TestTwoNodesConcurrent(t *testing.T) {
	ds := newStore(t)
	// 16 blocks of 16: plenty of claims, and room for everyone without borrowing.
	createPool(t, ds, "p", "10.0.0.0/24", blockSize(28))
	const perNode, goroutines, each = 2, 10, 3
	var wg sync.WaitGroup
	errs := make(chan error, 2*perNode*goroutines)
	for _, node := range []string{"n1", "n2"} {
		for inst := range perNode {
			m := newIPAM(t, ds)
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					h := fmt.Sprintf("k8s-pod-network.%s-%d-%d", node, inst, g)
					v4, _, err := m.AutoAssign(testCtx(t), AssignArgs{Num4: each, HandleID: h, Node: node})
					if err == nil && len(v4) != each {
						err = fmt.Errorf("%s got %v", h, v4)
					}
					if err != nil {
						errs <- err
					}
				}()
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	m := newIPAM(t, ds)
	s := checkInvariants(t, m) // fails on any address allocated twice
	if want := 2 * perNode * goroutines * each; len(s.byAddr) != want {
		t.Fatalf("%d allocations, want %d", len(s.byAddr), want)
	}
	for _, a := range s.byAddr {
		if a.BlockNode != a.Attrs[AttributeNode] {
			t.Errorf("%s of node %s is in block %s of %q: no borrowing was needed", a.Addr, a.Attrs[AttributeNode], a.Block, a.BlockNode)
		}
	}
	ctx := testCtx(t)
	b1, _ := m.BlocksForNode(ctx, "n1")
	b2, _ := m.BlocksForNode(ctx, "n2")
	for _, b := range b1 {
		if slices.Contains(b2, b) {
			t.Errorf("block %s owned by both nodes", b)
		}
	}
	if len(b1)+len(b2) != len(s.blocks) {
		t.Errorf("%d+%d owned blocks, %d blocks exist", len(b1), len(b2), len(s.blocks))
	}
}

// Nearly all of a small pool is taken by two nodes at once: claims race,
// blocks run out and nodes borrow from each other's blocks concurrently.
func TestTwoNodesConcurrentUnderPressure(t *testing.T) {
	ds := newStore(t)
	createPool(t, ds, "p", "10.0.0.0/26", blockSize(29)) // 8 blocks of 8
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for _, node := range []string{"n1", "n2"} {
		for inst := range 2 {
			m := newIPAM(t, ds)
			for g := range 8 {
				n := 2
				if g == 0 && inst == 0 {
					n = 0 // 60 of the 64 addresses in all
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					v4, _, err := m.AutoAssign(testCtx(t), AssignArgs{Num4: n, HandleID: fmt.Sprintf("h-%s-%d-%d", node, inst, g), Node: node})
					if err == nil && len(v4) != n {
						err = fmt.Errorf("got %v, want %d", v4, n)
					}
					if err != nil {
						errs <- err
					}
				}()
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := checkInvariants(t, newIPAM(t, ds))
	if len(s.byAddr) != 60 {
		t.Fatalf("%d allocations, want 60", len(s.byAddr))
	}
}

func TestExhaustedBlockClaimsNext(t *testing.T) {
	ds := newStore(t)
	createPool(t, ds, "p", "10.0.0.0/28", blockSize(30))
	m := newIPAM(t, ds)
	got := assign(t, m, "n1", "h1", 5)
	if got[4].String() != "10.0.0.4/30" {
		t.Fatalf("fifth address = %s, want 10.0.0.4/30 (next block)", got[4])
	}
	blocks, _ := m.BlocksForNode(testCtx(t), "n1")
	if fmt.Sprint(blocks) != "[10.0.0.0/30 10.0.0.4/30]" {
		t.Fatalf("blocks = %v", blocks)
	}
	checkInvariants(t, m)
}

func TestMaxBlocksPerHostThenBorrow(t *testing.T) {
	ds := newStore(t)
	ctx := testCtx(t)
	createPool(t, ds, "p", "10.0.0.0/28", blockSize(30)) // 4 blocks of 4
	m := newIPAM(t, ds)
	setConfig(t, m, Config{MaxBlocksPerHost: 1, AutoAllocateBlocks: true})
	assign(t, m, "n2", "h-n2", 1) // n2 owns 10.0.0.0/30
	assign(t, m, "n1", "h-n1", 4) // n1 fills 10.0.0.4/30
	// n1 is at its cap: the next address is borrowed from n2's block.
	got := assign(t, m, "n1", "h-n1b", 1)
	info, err := m.AllocationInfo(ctx, got[0].Addr())
	if err != nil {
		t.Fatal(err)
	}
	if info.Block.String() != "10.0.0.0/30" || info.BlockNode != "n2" || !info.Borrowed {
		t.Fatalf("expected a borrowed address from n2's block, got %+v", info)
	}
	if blocks, _ := m.BlocksForNode(ctx, "n1"); len(blocks) != 1 {
		t.Fatalf("n1 claimed beyond its cap: %v", blocks)
	}
	// With strict affinity nothing is borrowed, and the error says why.
	setConfig(t, m, Config{MaxBlocksPerHost: 1, StrictAffinity: true, AutoAllocateBlocks: true})
	before := len(readSnapshot(t, m).byAddr)
	_, _, err = m.AutoAssign(ctx, AssignArgs{Num4: 1, HandleID: "h-n1c", Node: "n1"})
	if !errors.Is(err, ErrNoFreeAddresses) || !strings.Contains(err.Error(), "maxBlocksPerHost=1") || !strings.Contains(err.Error(), "strictAffinity") {
		t.Fatalf("err = %v", err)
	}
	if after := len(readSnapshot(t, m).byAddr); after != before {
		t.Fatalf("failed request left %d allocations behind", after-before)
	}
	checkInvariants(t, m)
}

func TestStrictAffinityRefusesBorrowing(t *testing.T) {
	ds := newStore(t)
	ctx := testCtx(t)
	createPool(t, ds, "p", "10.0.0.0/29", blockSize(30)) // 2 blocks of 4
	m := newIPAM(t, ds)
	setConfig(t, m, Config{StrictAffinity: true, AutoAllocateBlocks: true})
	assign(t, m, "n1", "a", 2) // n1: 10.0.0.0/30, 2 free
	assign(t, m, "n2", "b", 4) // n2: 10.0.0.4/30, full
	_, _, err := m.AutoAssign(ctx, AssignArgs{Num4: 1, HandleID: "c", Node: "n2"})
	if !errors.Is(err, ErrNoFreeAddresses) || !strings.Contains(err.Error(), "no free addresses in pools [10.0.0.0/29]") {
		t.Fatalf("strict: err = %v", err)
	}
	if ips, _ := m.IPsByHandle(ctx, "c"); len(ips) != 0 {
		t.Fatalf("failed request holds %v", ips)
	}
	// Without strict affinity, n2 borrows from n1's block.
	setConfig(t, m, Config{AutoAllocateBlocks: true})
	got := assign(t, m, "n2", "c", 1)
	if !netip.MustParsePrefix("10.0.0.0/30").Contains(got[0].Addr()) {
		t.Fatalf("borrowed %s, want an address of n1's block", got[0])
	}
	checkInvariants(t, m)
}

func TestPoolExhaustionLeavesNothing(t *testing.T) {
	ds := newStore(t)
	ctx := testCtx(t)
	createPool(t, ds, "p", "10.0.0.0/28", blockSize(30))
	createPool(t, ds, "p6", "fd00::/126", blockSize(126)) // 4 IPv6 addresses
	m := newIPAM(t, ds)
	assign(t, m, "n2", "other", 3)

	_, _, err := m.AutoAssign(ctx, AssignArgs{Num4: 14, HandleID: "big", Node: "n1"})
	if !errors.Is(err, ErrNoFreeAddresses) || !strings.HasPrefix(err.Error(), "auto-assign IPv4 for node \"n1\": no free addresses in pools [10.0.0.0/28]: assigned 13 of 14") {
		t.Fatalf("err = %v", err)
	}
	s := checkInvariants(t, m)
	if len(s.byAddr) != 3 {
		t.Fatalf("after the failed request %d addresses are allocated, want the 3 from before", len(s.byAddr))
	}
	// Dual stack: IPv4 succeeds, IPv6 cannot; the IPv4 addresses are given back.
	_, _, err = m.AutoAssign(ctx, AssignArgs{Num4: 2, Num6: 5, HandleID: "dual", Node: "n1"})
	if !errors.Is(err, ErrNoFreeAddresses) || !strings.Contains(err.Error(), "fd00::/126") {
		t.Fatalf("dual-stack err = %v", err)
	}
	if ips, _ := m.IPsByHandle(ctx, "dual"); len(ips) != 0 {
		t.Fatalf("dual-stack failure left %v", ips)
	}
	if s := checkInvariants(t, m); len(s.byAddr) != 3 {
		t.Fatalf("dual-stack failure left %d allocations", len(s.byAddr)-3)
	}
	// And the whole pool is still usable.
	assign(t, m, "n1", "rest", 13)
}

func TestExplicitAndSelectedPools(t *testing.T) {
	ds := newStore(t)
	ctx := testCtx(t)
	manual := v3.AssignmentModeManual
	createPool(t, ds, "default", "10.0.0.0/24")
	createPool(t, ds, "rack1", "10.1.0.0/24", func(p *v3.IPPool) { p.Spec.NodeSelector = "rack == 'r1'" })
	createPool(t, ds, "off", "10.2.0.0/24", func(p *v3.IPPool) { p.Spec.Disabled = true })
	createPool(t, ds, "manual", "10.3.0.0/24", func(p *v3.IPPool) { p.Spec.AssignmentMode = &manual })
	createNode(t, ds, "r1-node", map[string]string{"rack": "r1"})
	createNode(t, ds, "plain", nil)
	m := newIPAM(t, ds)
	one := func(node string, pools ...string) (netip.Prefix, error) {
		v4, _, err := m.AutoAssign(ctx, AssignArgs{Num4: 1, HandleID: "h-" + node + strings.ReplaceAll(strings.Join(pools, ","), "/", "_"), Node: node, IPv4Pools: pools})
		if err != nil {
			return netip.Prefix{}, err
		}
		return v4[0], nil
	}
	// Explicit pools, by name or CIDR, including a Manual one.
	for _, c := range []struct{ node, pool, want string }{
		{"r1-node", "rack1", "10.1.0.0/26"},
		{"plain", "10.3.0.0/24", "10.3.0.0/26"},
		{"plain", "default", "10.0.0.0/26"},
	} {
		got, err := one(c.node, c.pool)
		if err != nil || got.String() != c.want {
			t.Errorf("%s from %s: %v, %v; want %s", c.node, c.pool, got, err, c.want)
		}
	}
	for _, c := range []struct{ node, pool, want string }{
		{"plain", "nope", `IP pool "nope" does not exist`},
		{"plain", "off", `IP pool "off" (10.2.0.0/24) is disabled`},
		{"plain", "rack1", `IP pool "rack1" (10.1.0.0/24) does not select node "plain"`},
		{"no-such-node", "10.1.0.0/24", `does not select node "no-such-node"`},
	} {
		if _, err := one(c.node, c.pool); !errors.Is(err, ErrPool) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s from %s: err = %v, want %q", c.node, c.pool, err, c.want)
		}
	}
	// A node without a Node resource has no labels: only all() pools.
	got, err := one("ghost")
	if err != nil || !netip.MustParsePrefix("10.0.0.0/24").Contains(got.Addr()) {
		t.Errorf("ghost node: %v, %v", got, err)
	}
	// Automatic selection: the rack pool only for a rack node, never the
	// disabled or Manual pools. Fill whole blocks (strict, so nothing is
	// borrowed) until both qualifying pools are used up.
	setConfig(t, m, Config{StrictAffinity: true, AutoAllocateBlocks: true})
	createNode(t, ds, "r1-b", map[string]string{"rack": "r1"})
	seenPools := map[string]int{}
	for i := 0; ; i++ {
		v4, _, err := m.AutoAssign(ctx, AssignArgs{Num4: 64, HandleID: fmt.Sprintf("fill-%d", i), Node: "r1-b"})
		if errors.Is(err, ErrNoFreeAddresses) {
			break
		}
		if err != nil || i > 10 {
			t.Fatalf("fill %d: %v", i, err)
		}
		for _, p := range v4 {
			seenPools[netip.PrefixFrom(p.Addr(), 16).Masked().String()]++
		}
	}
	// default: 2 blocks left after "plain" and "ghost"; rack1: 3 left after "r1-node".
	if fmt.Sprint(seenPools) != "map[10.0.0.0/16:128 10.1.0.0/16:192]" {
		t.Errorf("rack node drew %v, want the rest of the default and rack pools", seenPools)
	}
	checkInvariants(t, m)
}

func TestNoUsablePools(t *testing.T) {
	ds := newStore(t)
	createPool(t, ds, "tunnels", "10.0.0.0/24", func(p *v3.IPPool) {
		p.Spec.AllowedUses = []v3.IPPoolAllowedUse{v3.IPPoolAllowedUseTunnel}
	})
	m := newIPAM(t, ds)
	_, _, err := m.AutoAssign(testCtx(t), AssignArgs{Num4: 1, HandleID: "h", Node: "n1"})
	if !errors.Is(err, ErrNoPools) {
		t.Fatalf("workload request with only a tunnel pool: %v", err)
	}
	v4, _, err := m.AutoAssign(testCtx(t), AssignArgs{Num4: 1, HandleID: "ipip-tunnel-addr-n1", Node: "n1", Tunnel: true})
	if err != nil || len(v4) != 1 {
		t.Fatalf("tunnel request: %v %v", v4, err)
	}
}

func TestReleaseBySequenceNumberSparesNewOwner(t *testing.T) {
	ds := newStore(t)
	ctx := testCtx(t)
	createPool(t, ds, "p", "10.0.0.0/24")
	m := newIPAM(t, ds)
	ip := netip.MustParseAddr("10.0.0.7")
	if err := m.AssignIP(ctx, ip, "old", nil, "n1"); err != nil {
		t.Fatal(err)
	}
	if err := m.AssignIP(ctx, ip, "x", nil, "n1"); !errors.Is(err, ErrInUse) {
		t.Fatalf("assigning a taken address: %v", err)
	}
	seen, err := m.AllocationInfo(ctx, ip)
	if err != nil {
		t.Fatal(err)
	}
	// The old owner goes away and the address is given to a new one.
	if _, err := m.ReleaseIPs(ctx, ip); err != nil {
		t.Fatal(err)
	}
	if err := m.AssignIP(ctx, ip, "new", nil, "n1"); err != nil {
		t.Fatal(err)
	}
	// A late release of what the old owner had must not free it.
	old := seen.SequenceNumber
	res, err := m.Release(ctx, ReleaseOptions{Addr: ip, SequenceNumber: &old})
	if err != nil || len(res.Stale) != 1 || len(res.Released) != 0 {
		t.Fatalf("stale release = %+v, %v", res, err)
	}
	res, err = m.Release(ctx, ReleaseOptions{Addr: ip, HandleID: "old"})
	if err != nil || len(res.Stale) != 1 {
		t.Fatalf("release naming the old handle = %+v, %v", res, err)
	}
	if info, err := m.AllocationInfo(ctx, ip); err != nil || info.HandleID != "new" {
		t.Fatalf("new owner lost the address: %+v, %v", info, err)
	}
	cur, _ := m.AllocationInfo(ctx, ip)
	seq := cur.SequenceNumber
	res, err = m.Release(ctx, ReleaseOptions{Addr: ip, HandleID: "new", SequenceNumber: &seq})
	if err != nil || len(res.Released) != 1 {
		t.Fatalf("matching release = %+v, %v", res, err)
	}
	checkInvariants(t, m)
}

func TestAssignIPStrictAffinity(t *testing.T) {
	ds := newStore(t)
	ctx := testCtx(t)
	createPool(t, ds, "p", "10.0.0.0/24")
	m := newIPAM(t, ds)
	assign(t, m, "n1", "a", 1) // n1 owns 10.0.0.0/26
	setConfig(t, m, Config{StrictAffinity: true, AutoAllocateBlocks: true})
	if err := m.AssignIP(ctx, netip.MustParseAddr("10.0.0.9"), "b", nil, "n2"); err == nil || !strings.Contains(err.Error(), "strictAffinity") {
		t.Fatalf("strict AssignIP into another node's block: %v", err)
	}
	if err := m.AssignIP(ctx, netip.MustParseAddr("10.0.0.70"), "b", nil, "n2"); err != nil {
		t.Fatal(err)
	}
	if blocks, _ := m.BlocksForNode(ctx, "n2"); fmt.Sprint(blocks) != "[10.0.0.64/26]" {
		t.Fatalf("AssignIP must claim the block: %v", blocks)
	}
	if err := m.AssignIP(ctx, netip.MustParseAddr("192.168.0.1"), "c", nil, "n2"); !errors.Is(err, ErrNotInPool) {
		t.Fatalf("address outside the pools: %v", err)
	}
	checkInvariants(t, m)
}

func TestReleaseHostAffinities(t *testing.T) {
	ds := newStore(t)
	ctx := testCtx(t)
	createPool(t, ds, "p", "10.0.0.0/28", blockSize(30))
	m := newIPAM(t, ds)
	assign(t, m, "n1", "gone", 4)         // 10.0.0.0/30, released below: empty
	keep := assign(t, m, "n1", "kept", 2) // 10.0.0.4/30
	assign(t, m, "n2", "other", 1)
	if err := m.ReleaseByHandle(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := m.ReleaseHostAffinities(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	s := checkInvariants(t, m)
	var cidrs []string
	for _, b := range s.blocks {
		cidrs = append(cidrs, b.prefix.String()+"="+b.owner())
	}
	if fmt.Sprint(cidrs) != "[10.0.0.4/30= 10.0.0.8/30=n2]" {
		t.Fatalf("blocks after release = %v: the empty block must be gone, the used one unowned", cidrs)
	}
	for _, a := range s.affs {
		if a.Spec.Node == "n1" {
			t.Fatalf("affinity %s of n1 remains", a.Name)
		}
	}
	if blocks, _ := m.BlocksForNode(ctx, "n1"); len(blocks) != 0 {
		t.Fatalf("n1 still owns %v", blocks)
	}
	if ips, _ := m.IPsByHandle(ctx, "kept"); len(ips) != 2 {
		t.Fatalf("allocations must survive: %v", ips)
	}
	if err := m.ReleaseHostAffinities(ctx, "n1"); err != nil {
		t.Fatalf("second call: %v", err)
	}
	// Once its last address goes, the unowned block is deleted.
	if _, err := m.ReleaseIPs(ctx, keep[0].Addr(), keep[1].Addr()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.getBlock(ctx, blockName(netip.MustParsePrefix("10.0.0.4/30"))); !datastore.IsNotFound(err) {
		t.Fatalf("empty unowned block still exists: %v", err)
	}
	checkInvariants(t, m)
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	ds := newStore(t)
	ctx := testCtx(t)
	m := newIPAM(t, ds)
	if c, err := m.GetConfig(ctx); err != nil || c != DefaultConfig() {
		t.Fatalf("default config = %+v, %v", c, err)
	}
	if err := m.SetConfig(ctx, Config{}); err == nil {
		t.Fatal("disabling both strictAffinity and autoAllocateBlocks must fail")
	}
	if err := m.SetConfig(ctx, Config{MaxBlocksPerHost: -1, AutoAllocateBlocks: true}); err == nil {
		t.Fatal("negative maxBlocksPerHost must fail")
	}
	want := Config{StrictAffinity: true, MaxBlocksPerHost: 7}
	setConfig(t, m, want)
	if c, _ := m.GetConfig(ctx); c != want {
		t.Fatalf("config = %+v, want %+v", c, want)
	}
	r, err := ds.Get(ctx, v3.Key{Kind: "IPAMConfiguration", Name: "default"})
	if err != nil || r.(*v3.IPAMConfiguration).Spec.MaxBlocksPerHost != 7 {
		t.Fatalf("stored config: %+v, %v", r, err)
	}
}

// A context cancelled mid-request fails the request and leaves nothing half
// done that the invariants would catch.
func TestCancelledContext(t *testing.T) {
	ds := newStore(t)
	createPool(t, ds, "p", "10.0.0.0/24")
	m := newIPAM(t, ds)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := m.AutoAssign(ctx, AssignArgs{Num4: 1, HandleID: "h", Node: "n1"}); err == nil {
		t.Fatal("cancelled AutoAssign succeeded")
	}
	checkInvariants(t, m)
}
