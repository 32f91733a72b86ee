// Package gobgp implements bgp.Speaker with an embedded GoBGP v4 server. It
// is the only package in Tabby that imports GoBGP.
//
// Shape (from the peer study of kube-router, Cilium and Calico-VPP):
//   - Set* calls record desired state and kick one goroutine, which owns every
//     GoBGP mutation: policy first (so nothing is ever accepted or sent
//     unfiltered), then peers, then advertisements. Failures are retried with
//     backoff; nothing is applied twice.
//   - GoBGP's watch callbacks only record deltas in a map and signal a
//     one-slot channel (GoBGP's watch queue is unbounded: a slow callback
//     grows memory). Locally originated paths are skipped with continue.
//   - A periodic ListPath of the Loc-RIB repairs any drift between the
//     learned-route map and GoBGP; a difference is repaired only when two
//     scans in a row agree on it, so a scan racing in-flight events cannot
//     flap a route.
//   - Filters: export default REJECT, accepting locally originated paths and,
//     on a route reflector, pool routes towards cluster peers; import
//     rejects this node's own blocks (hijack) and, from cluster peers,
//     anything outside the pools, and accepts the rest (a ToR default
//     route). Defined sets that would be empty are never referenced (an
//     empty set in an ANY match matches everything); a filter change builds a
//     new generation, switches the global assignment atomically, then
//     deletes the old one.
//
// It must not write to the kernel: learned routes are handed to felix.
package gobgp
