// Package bgp is Tabby's BGP vocabulary: the Speaker interface that calico-node
// drives, and the plain values that cross it (global config, desired peers,
// advertisements, learned routes, peer status). It also holds the small pure
// helpers every user of a speaker needs (readiness, status formatting).
//
// What it owns: the contract. The embedded GoBGP implementation lives in
// bgp/gobgp (the only package allowed to import GoBGP), peer selection from
// Calico resources in bgp/peers, and the glue from datastore resources to a
// Speaker in bgp/controller.
//
// What it must not do: I/O, kernel writes (felix/dataplane is the only route
// owner; learned routes are handed out, never programmed here), or importing
// GoBGP.
package bgp
