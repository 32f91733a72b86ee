#!/usr/bin/env bash
# make bench: every figure next to its reference, measured in the same run.
# Needs root (network namespaces). Prints one table per benchmark; nothing here
# passes or fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
if [[ $(id -u) -ne 0 ]]; then
  echo "make bench needs root (it builds network namespaces)" >&2
  exit 1
fi
export TABBY_REQUIRE_PRIVILEGED=1
out=${BENCH_OUT:-bin/bench-results.txt}
mkdir -p "$(dirname "$out")"
: > "$out"
run() { echo; echo "== $1"; shift; "$@" 2>&1 | tee -a "$out"; }

run "IPAM allocations per second (4 concurrent allocators, 2 nodes, real etcd)" \
  go test -run '^$' -bench 'BenchmarkAutoAssign(Parallel|Burst)' -benchtime 2000x -count 1 ./ipam/
run "Program 250 workload routes: Tabby's dataplane vs raw netlink" \
  go test -run '^$' -bench 'Benchmark(Program250WorkloadRoutes|RawNetlink250Routes)' -benchtime 20x -count 1 ./felix/dataplane/
if [[ -d tests/bench ]]; then
  run "CNI ADD latency: Tabby (calico + calico-ipam) vs reference ptp + host-local" \
    go test -tags bench -count 1 -timeout 20m -run 'TestBench' -v ./tests/bench/
fi
run "BGP: 100,000 prefixes from a BIRD peer into the kernel (Tabby vs BIRD vs raw netlink)" \
  go test -run '^$' -bench BenchmarkBGP100kPrefixes -benchtime 1x -count 1 -timeout 30m ./tests/bench/
run "BGP: full mesh of 20 and 50 nodes, cold start (Tabby vs BIRD)" \
  go test -run '^$' -bench BenchmarkBGPFullMesh -benchtime 1x -count 1 -timeout 30m ./tests/bench/
echo; echo "results also in $out"
