// Package peers computes a node's desired BGP sessions from Calico resources:
// this node, every Node, every BGPPeer and the BGPConfigurations ("default"
// and "node.<name>"). It follows Calico's rules (confd's bgp_processor and
// client.go): the node-to-node mesh (skipping route reflectors, off when
// this node is one), global BGPPeers beating node-specific ones for the same
// address, peerSelector expanding to node addresses, automatic reverse
// peering, the passive side chosen by comparing addresses, and route
// reflector clients.
//
// It is pure: no I/O, no clock. Passwords are resolved through a function
// the caller passes (the controller reads files; tests pass a map).
package peers
