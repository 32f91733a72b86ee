// Package autodetect finds the address calico-node registers for its node
// (Node.spec.bgp.ipv4Address / ipv6Address), with Calico's autodetection
// methods: first-found, can-reach=DEST, interface=REGEX,...,
// skip-interface=REGEX,..., cidr=CIDR,... (kubernetes-internal-ip is parsed
// and refused: it needs the Kubernetes datastore).
//
// It owns the method syntax, Calico's list of interfaces that are never a
// node's address (docker*, cali*, tunl*, ...), and the order interfaces are
// tried in. It reads the host only through the System seam (interfaces and
// the kernel's choice of source address) and never writes anything: the
// caller decides what to store and how to report a failure.
package autodetect
