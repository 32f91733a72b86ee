// Package controller drives a bgp.Speaker from the datastore: it follows
// Nodes, BGPPeers, BGPConfigurations, IPPools, BlockAffinities and
// WorkloadEndpoints with the datastore syncer, computes the desired peers
// (bgp/peers), filters and advertisements (this file's pure Desired), starts
// the speaker once the datastore is in sync, restarts it when its identity
// (AS, router ID, port) changes, and relays learned routes to Felix with the
// initial-sync signal that gates Felix's pruning.
//
// It also answers for BGP in the agent's Status RPC and in readiness.
//
// What it must not do: program the kernel (Felix does, from the routes it
// relays), import GoBGP (bgp/gobgp does), or write to the datastore.
package controller
