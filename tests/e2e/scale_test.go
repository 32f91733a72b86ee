package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/tabbynet/tabby/cni-plugin/netconf"
	"github.com/tabbynet/tabby/tests/e2e/cnilab"
)

// addAll adds pods concurrently (at most workers at a time) and returns
// each pod's address; a failed ADD is a test error (callers stop on
// t.Failed(); addAll may run in a goroutine, so it never calls FailNow).
func addAll(t *testing.T, rt *cnilab.Runtime, list *libcni.NetworkConfigList, pods []*cnilab.Pod, workers int) []net.IP {
	t.Helper()
	ips := make([]net.IP, len(pods))
	errs := make([]error, len(pods))
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	for i, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			res, err := rt.Add(list, p)
			if err != nil {
				errs[i] = fmt.Errorf("ADD %s: %w", p.Name, err)
				return
			}
			ips[i] = res.IPs[0].Address.IP
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	return ips
}

// delAll deletes pods concurrently; every DEL must succeed.
func delAll(t *testing.T, rt *cnilab.Runtime, list *libcni.NetworkConfigList, pods []*cnilab.Pod, workers int) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := rt.Del(list, p); err != nil {
				t.Errorf("DEL %s: %v", p.Name, err)
			}
		}()
	}
	wg.Wait()
}

// TestConcurrentAdds: 50 ADDs at once get 50 distinct addresses, every pod
// is reachable, and 50 concurrent DELs leave nothing behind.
func TestConcurrentAdds(t *testing.T) {
	const n = 50
	lab := cnilab.New(t)
	node := lab.AddNode(cnilab.NodeOptions{})
	rt := node.Runtime(t)
	list := cnilab.ConfList(t, node.CalicoConf(nil))

	pods := make([]*cnilab.Pod, n)
	for i := range pods {
		pods[i] = cnilab.NewPod(t, fmt.Sprintf("burst-%02d", i))
	}
	start := time.Now()
	ips := addAll(t, rt, list, pods, n)
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d concurrent ADDs took %s", n, time.Since(start).Round(time.Millisecond))

	seen := map[string]string{}
	for i, ip := range ips {
		if other, dup := seen[ip.String()]; dup {
			t.Errorf("%s and %s both got %s", other, pods[i].Name, ip)
		}
		seen[ip.String()] = pods[i].Name
	}
	if links := node.Links(t, "cali"); len(links) != n {
		t.Errorf("%d host veths, want %d", len(links), n)
	}
	if weps := lab.WorkloadEndpoints(t, ""); len(weps) != n {
		t.Errorf("%d WorkloadEndpoints, want %d", len(weps), n)
	}
	// Every pod reaches the next one (and so every pod is reachable).
	for i, p := range pods {
		if err := cnilab.Ping(p, ips[(i+1)%n], 3); err != nil {
			t.Errorf("%s cannot reach %s: %v", p.Name, ips[(i+1)%n], err)
		}
	}

	delAll(t, rt, list, pods, n)
	for i, p := range pods {
		assertNothingLeft(t, node, p, vethOf(p), ips[i])
	}
	if links := node.Links(t, "cali"); len(links) != 0 {
		t.Errorf("host veths left after every DEL: %v", keys(links))
	}
	assertIPAMClean(t, lab)
}

// assertIPAMClean runs the datastore's IPAM check: no leaked address, no
// orphan, no handle mismatch.
func assertIPAMClean(t *testing.T, lab *cnilab.Lab) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := lab.IPAM.Check(ctx)
	if err != nil {
		t.Fatalf("IPAM check: %v", err)
	}
	if n := rep.Problems(); n > 0 {
		t.Errorf("IPAM check found %d problems: leaked %+v; missing %+v; orphaned blocks %+v; orphaned affinities %+v; leaked handles %+v; missing handles %+v; mismatches %+v",
			n, rep.Leaked(), rep.Missing, rep.OrphanedBlocks, rep.OrphanedAffinities, rep.LeakedHandles, rep.MissingHandles, rep.HandleMismatches)
	}
	for _, a := range rep.Allocations {
		if strings.HasPrefix(a.Handle, netconf.HandlePrefix) {
			t.Errorf("pod address %s still allocated (handle %s)", a.IP, a.Handle)
		}
	}
}

// TestTwoNodesNeverShareABlock: two agents on one datastore, adding pods at
// the same time with small blocks (so both keep claiming new ones), never
// hand out addresses from a block affine to the other node.
func TestTwoNodesNeverShareABlock(t *testing.T) {
	const perNode = 20
	lab := cnilab.New(t)
	nodes := []*cnilab.Node{
		lab.AddNode(cnilab.NodeOptions{BlockSize: 29}),
		lab.AddNode(cnilab.NodeOptions{BlockSize: 29}),
	}
	type placed struct {
		node *cnilab.Node
		pods []*cnilab.Pod
		ips  []net.IP
	}
	out := make([]placed, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		rt := n.Runtime(t)
		list := cnilab.ConfList(t, n.CalicoConf(nil))
		pods := make([]*cnilab.Pod, perNode)
		for j := range pods {
			pods[j] = cnilab.NewPod(t, fmt.Sprintf("%s-pod-%02d", n.Name, j))
		}
		out[i] = placed{node: n, pods: pods}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].ips = addAll(t, rt, list, pods, 8)
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	blocks := map[string][]netip.Prefix{}
	for _, n := range nodes {
		b, err := lab.IPAM.BlocksForNode(ctx, n.Name)
		if err != nil {
			t.Fatalf("blocks of %s: %v", n.Name, err)
		}
		blocks[n.Name] = b
	}
	for _, b1 := range blocks[nodes[0].Name] {
		for _, b2 := range blocks[nodes[1].Name] {
			if b1.Overlaps(b2) {
				t.Errorf("block %s of %s overlaps block %s of %s", b1, nodes[0].Name, b2, nodes[1].Name)
			}
		}
	}
	all := map[string]bool{}
	for _, p := range out {
		for k, ip := range p.ips {
			addr, _ := netip.AddrFromSlice(ip.To4())
			if all[addr.String()] {
				t.Errorf("address %s handed out twice", addr)
			}
			all[addr.String()] = true
			inOwn := false
			for _, b := range blocks[p.node.Name] {
				inOwn = inOwn || b.Contains(addr)
			}
			if !inOwn {
				t.Errorf("%s on %s got %s, outside its node's blocks %v", p.pods[k].Name, p.node.Name, addr, blocks[p.node.Name])
			}
		}
	}
	t.Logf("blocks: %v", blocks)
	if len(blocks[nodes[0].Name]) < 3 || len(blocks[nodes[1].Name]) < 3 {
		t.Errorf("with /29 blocks and %d pods each node should hold at least 3 blocks: %v", perNode, blocks)
	}
	for _, p := range out {
		delAll(t, p.node.Runtime(t), cnilab.ConfList(t, p.node.CalicoConf(nil)), p.pods, 8)
	}
	assertIPAMClean(t, lab)
}
