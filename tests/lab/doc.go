// Package lab builds and tears down multi-node Tabby topologies on one
// machine: every node, pod, route reflector and top-of-rack router is a
// network namespace wired to a "fabric" namespace of Linux bridges (one per
// rack), with one embedded etcd, one calico-node per node, pods added through
// the real calico CNI plugin with libcni, and real BIRD and FRR daemons as
// peers that are not Tabby. It is used by the `tabby-lab` demo
// (cmd/tabby-lab, `make demo`), the interop tests (tests/interop) and the BGP
// benchmarks (tests/bench).
//
// What it owns: the lab's namespaces (all named "tlab-<pid>-<seq>-<role>"),
// the processes it starts (killed by PID, never by name; each also gets a
// parent-death signal where the kernel keeps it), the etcd forwarder socket
// inside the fabric namespace and a temporary work directory. Close removes
// all of it in reverse order of creation, and runs after a failure, on
// Ctrl-C (CloseOnSignal) or when the caller returns; SweepStale removes what
// a lab killed with SIGKILL left behind, and only that.
//
// What it must not do: touch the host's own network namespace (no address,
// route, link or rule is ever created there), send traffic anywhere but
// loopback and the namespaces it made, or decide pass/fail on wall-clock
// time (callers measure; the lab only reports).
//
// Address plan (private, and only ever inside the lab's namespaces):
// rack r is 10.99.r.0/24 with the top-of-rack router at .1, nodes from .10,
// other peers (BIRD, FRR route reflectors) from .100 and the fabric's own
// address, where etcd is forwarded, at .254. Pods come from 10.244.0.0/16.
package lab
