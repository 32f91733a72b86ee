#!/usr/bin/env bash
# make demo: a three-node Tabby cluster on this machine (network namespaces,
# an FRR top-of-rack router, an embedded etcd, calico-node per node, pods
# through the calico CNI plugin), its pod-to-pod matrix and each node's
# `calicoctl node status`, then teardown. Extra arguments go to tabby-lab:
#   scripts/demo.sh -topology rr -rr 2      scripts/demo.sh -topology tor -nodes 4
#   scripts/demo.sh -hold                   (keep it up until Ctrl-C)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
if [[ $(id -u) -ne 0 ]]; then
  echo "make demo needs root (it builds network namespaces)" >&2
  exit 1
fi
# make demo has built bin/ (including bin/tabby-lab); build what is missing
# when run directly.
for b in calico-node calicoctl calico calico-ipam tabby-lab; do
  if [[ ! -x bin/$b ]]; then
    go build -o bin/ ./cmd/calico-node ./cmd/calicoctl ./cmd/calico ./cmd/calico-ipam ./cmd/tabby-lab
    break
  fi
done
exec bin/tabby-lab -bin bin "$@"
