// Package startup is calico-node's one-shot start: it registers or updates
// this host's Node resource (spec.bgp.ipv4Address / ipv6Address with their
// prefix lengths, asNumber, orchRefs), refuses an address another Node
// already uses, creates the default IP pools when none of their family
// exists, and writes the node name file the CNI plugin reads.
//
// It follows Calico's node/pkg/lifecycle/startup, with the differences
// listed on Run. It reads the host only through autodetect.System and
// writes only the datastore and the node name file; it never touches routes
// or interfaces, and it does not keep running: the daemon owns what runs.
package startup
