package ipam

import (
	"fmt"
	"sync"
	"testing"
)

// BenchmarkAutoAssignParallel measures allocations per second with four
// concurrent allocators (separate IPAM values, as separate processes would
// be) on two nodes against a real embedded etcd, and checks at the end that
// no address was handed out twice.
func BenchmarkAutoAssignParallel(b *testing.B) {
	ds := newStore(b)
	createPool(b, ds, "p", "10.0.0.0/14")
	const allocators = 4
	counted := &countingStore{Interface: ds}
	ms := make([]*IPAM, allocators)
	for i := range ms {
		ms[i] = New(counted, nil)
	}
	ctx := testCtx(b)
	counted.reset()
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, allocators)
	for i, m := range ms {
		n := b.N / allocators
		if i < b.N%allocators {
			n++
		}
		node := fmt.Sprintf("n%d", i%2+1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n {
				_, _, err := m.AutoAssign(ctx, AssignArgs{Num4: 1, HandleID: fmt.Sprintf("k8s-pod-network.a%d-%d", i, j), Node: node})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "allocs/s")
	// Datastore requests per allocation: what the rate is made of.
	b.ReportMetric(float64(counted.reads.Load())/float64(b.N), "reads/alloc")
	b.ReportMetric(float64(counted.writes.Load())/float64(b.N), "writes/alloc")
	b.ReportMetric(float64(counted.conflicts.Load())/float64(b.N), "conflicts/alloc")
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	s := readSnapshot(b, New(ds, nil)) // fails on a duplicate address
	if len(s.byAddr) != b.N {
		b.Fatalf("%d addresses allocated, want %d", len(s.byAddr), b.N)
	}
}

// BenchmarkAutoAssignBurst measures allocations per second the way a node
// agent sees them when many pods start at once: one IPAM value per node
// (one calico-node each), two nodes, 16 requests of each node in flight at
// any time, against a real embedded etcd; it checks at the end that no
// address was handed out twice. Requests of one node that arrive together
// share block writes (batch.go), which writes/alloc shows.
func BenchmarkAutoAssignBurst(b *testing.B) {
	ds := newStore(b)
	createPool(b, ds, "p", "10.0.0.0/14")
	const nodes, inFlight = 2, 16
	counted := &countingStore{Interface: ds}
	ms := make([]*IPAM, nodes)
	for i := range ms {
		ms[i] = New(counted, nil)
	}
	ctx := testCtx(b)
	counted.reset()
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, nodes*inFlight)
	for w := range nodes * inFlight {
		n := b.N / (nodes * inFlight)
		if w < b.N%(nodes*inFlight) {
			n++
		}
		node := w % nodes
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n {
				_, _, err := ms[node].AutoAssign(ctx, AssignArgs{Num4: 1, HandleID: fmt.Sprintf("k8s-pod-network.w%d-%d", w, j), Node: fmt.Sprintf("n%d", node+1)})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "allocs/s")
	b.ReportMetric(float64(counted.reads.Load())/float64(b.N), "reads/alloc")
	b.ReportMetric(float64(counted.writes.Load())/float64(b.N), "writes/alloc")
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	s := readSnapshot(b, New(ds, nil)) // fails on a duplicate address
	if len(s.byAddr) != b.N {
		b.Fatalf("%d addresses allocated, want %d", len(s.byAddr), b.N)
	}
}
