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
	ms := make([]*IPAM, allocators)
	for i := range ms {
		ms[i] = New(ds, nil)
	}
	ctx := testCtx(b)
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
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	s := readSnapshot(b, New(ds, nil)) // fails on a duplicate address
	if len(s.byAddr) != b.N {
		b.Fatalf("%d addresses allocated, want %d", len(s.byAddr), b.N)
	}
}
