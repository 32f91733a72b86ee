// Package bench holds Tabby's benchmarks: each measures a Tabby figure next
// to its reference (a reference plugin or daemon) in the same run, prints
// them, and passes or fails on no number. The CNI benchmark
// (TestBenchCNIAddLatency: calico + calico-ipam vs ptp + host-local) runs
// only when selected:
//
//	go test -count 1 -timeout 20m -tags bench -run TestBench -v ./tests/bench/
//
// (make bench does), so `go test ./...` stays fast.
package bench
