package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
)

// Helpers for the tests that run against a real embedded etcd.

var testNow = time.Unix(1700000000, 0)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newStore(t testing.TB) datastore.Interface {
	t.Helper()
	return etcdtest.NewStore(t)
}

func newIPAM(t testing.TB, ds datastore.Interface) *IPAM {
	return New(ds, etcdtest.Logger(t))
}

func createPool(t testing.TB, ds datastore.Interface, name, cidr string, mutate ...func(*v3.IPPool)) {
	t.Helper()
	if _, err := ds.Create(context.Background(), ippool(name, cidr, mutate...)); err != nil {
		t.Fatalf("create pool %s: %v", name, err)
	}
}

func blockSize(n int) func(*v3.IPPool) { return func(p *v3.IPPool) { p.Spec.BlockSize = n } }

func createNode(t testing.TB, ds datastore.Interface, name string, labels map[string]string) {
	t.Helper()
	n := &v3.Node{}
	n.Name = name
	n.Labels = labels
	if _, err := ds.Create(context.Background(), n); err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
}

func createWEP(t testing.TB, ds datastore.Interface, ns, pod, containerID string, ips ...string) {
	t.Helper()
	w := &v3.WorkloadEndpoint{}
	w.Namespace = ns
	w.Name = "n1-k8s-" + pod + "-eth0"
	w.Spec = v3.WorkloadEndpointSpec{Orchestrator: "k8s", Node: "n1", Pod: pod, ContainerID: containerID, Endpoint: "eth0", IPNetworks: ips}
	if _, err := ds.Create(context.Background(), w); err != nil {
		t.Fatalf("create workload endpoint %s/%s: %v", ns, pod, err)
	}
}

func setConfig(t testing.TB, m *IPAM, c Config) {
	t.Helper()
	if err := m.SetConfig(context.Background(), c); err != nil {
		t.Fatalf("set config %+v: %v", c, err)
	}
}

// assign is AutoAssign of IPv4 addresses that must succeed.
func assign(t testing.TB, m *IPAM, node, handle string, n int) []netip.Prefix {
	t.Helper()
	v4, _, err := m.AutoAssign(testCtx(t), AssignArgs{Num4: n, HandleID: handle, Node: node,
		Attrs: map[string]string{AttributeNamespace: "default", AttributePod: handle}})
	if err != nil {
		t.Fatalf("assign %d for %s on %s: %v", n, handle, node, err)
	}
	if len(v4) != n {
		t.Fatalf("assign %d for %s: got %v", n, handle, v4)
	}
	return v4
}

// snapshot is what the records say, read straight from the datastore.
type snapshot struct {
	blocks   []*blockState
	affs     []*v3.BlockAffinity
	handles  []*v3.IPAMHandle
	byAddr   map[netip.Addr]*Allocation
	byHandle map[string]map[string]int
}

func readSnapshot(t testing.TB, m *IPAM) snapshot {
	t.Helper()
	ctx := testCtx(t)
	s := snapshot{byAddr: map[netip.Addr]*Allocation{}, byHandle: map[string]map[string]int{}}
	var err error
	if s.blocks, err = m.listBlocks(ctx); err != nil {
		t.Fatal(err)
	}
	if s.affs, err = m.listAffinities(ctx); err != nil {
		t.Fatal(err)
	}
	if s.handles, err = listAs[*v3.IPAMHandle](ctx, m.ds, "IPAMHandle", ""); err != nil {
		t.Fatal(err)
	}
	for _, b := range s.blocks {
		for o := range b.rec.Spec.Allocations {
			if b.rec.Spec.Allocations[o] == nil {
				continue
			}
			a := allocationAt(b, o)
			if prev, dup := s.byAddr[a.Addr]; dup {
				t.Fatalf("address %s allocated twice: %+v and %+v", a.Addr, prev, a)
			}
			s.byAddr[a.Addr] = a
			if a.HandleID != "" {
				if s.byHandle[a.HandleID] == nil {
					s.byHandle[a.HandleID] = map[string]int{}
				}
				s.byHandle[a.HandleID][b.prefix.String()]++
			}
		}
	}
	return s
}

// checkInvariants asserts what must hold in any quiescent state: blocks do
// not overlap, every block has at most one owner and at most one confirmed
// affinity (the owner's), and handle records count exactly what the blocks
// hold.
func checkInvariants(t testing.TB, m *IPAM) snapshot {
	t.Helper()
	s := readSnapshot(t, m)
	for i, a := range s.blocks {
		for _, b := range s.blocks[i+1:] {
			if a.prefix.Overlaps(b.prefix) {
				t.Errorf("blocks %s and %s overlap", a.prefix, b.prefix)
			}
		}
	}
	confirmed := map[string][]string{}
	for _, a := range s.affs {
		if a.Spec.State == v3.AffinityStateConfirmed {
			confirmed[a.Spec.CIDR] = append(confirmed[a.Spec.CIDR], a.Spec.Node)
		}
	}
	owners := map[string]string{}
	for _, b := range s.blocks {
		owners[b.prefix.String()] = b.owner()
	}
	for cidr, nodes := range confirmed {
		if len(nodes) > 1 {
			t.Errorf("block %s has confirmed affinities for %v", cidr, nodes)
		}
		if owners[cidr] != nodes[0] {
			t.Errorf("block %s: confirmed affinity for %q but the block says %q", cidr, nodes[0], owners[cidr])
		}
	}
	for _, h := range s.handles {
		want := s.byHandle[h.Spec.HandleID]
		if fmt.Sprint(h.Spec.Block) != fmt.Sprint(want) {
			t.Errorf("handle %s counts %v, blocks hold %v", h.Spec.HandleID, h.Spec.Block, want)
		}
	}
	for id := range s.byHandle {
		found := false
		for _, h := range s.handles {
			found = found || h.Spec.HandleID == id
		}
		if !found {
			t.Errorf("handle %s holds addresses but has no record", id)
		}
	}
	return s
}
