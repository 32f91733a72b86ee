// Package netconf turns what a container runtime hands a CNI plugin (the
// netconf JSON on stdin, CNI_ARGS, CNI_CONTAINERID, CNI_IFNAME) into the
// values the calico and calico-ipam plugins act on: Calico's netconf keys,
// the pod's identity, its host-side veth name and its IPAM handle.
//
// It owns Calico's key names, their types and defaults, and the naming rules
// (veth "cali" + 11 hex chars of sha1("<namespace>.<pod>"), handle
// "k8s-pod-network.<containerID>"). It is pure: no file, network or kernel I/O (the
// nodename file is read through a function the caller passes in), so every
// rule is unit-tested without privileges.
package netconf
