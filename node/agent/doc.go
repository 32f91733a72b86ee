// Package agent is calico-node's local gRPC service (api/agentpb), served on
// a unix socket for the calico and calico-ipam CNI plugins and calicoctl.
//
// It owns the CNI side of a workload: IPAM assignment and release by handle,
// the WorkloadEndpoint resource (named as Calico names it), and asking the
// dataplane to program the host route before AddWorkload returns, so that no
// pod starts without its route. Requests that change state are serialized
// per endpoint (AddWorkload, DelWorkload) and per IPAM handle (AssignIPs,
// ReleaseIPs), and GarbageCollect excludes them all (locks.go); requests for
// different pods run at once, which is safe because every datastore write is
// compare-and-swap (so another writer, calicoctl or a second agent, cannot
// be overwritten either), the ipam package serializes one node's block
// writes, and the dataplane coalesces endpoints into shared applies.
//
// It never touches the kernel itself: routes are the dataplane's
// (ARCHITECTURE.md decision 1), reached through the small Dataplane
// interface; addresses are the ipam package's, reached through IPAM. Errors
// go back as gRPC status codes whose message says what to fix:
// ResourceExhausted (pools full), InvalidArgument (a bad request or an
// unusable pool), FailedPrecondition (no pool at all), Unavailable (the
// datastore is down: retry), Aborted (too many concurrent writers: retry).
package agent
