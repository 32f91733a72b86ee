// Package cnilab is the test bench of the calico CNI plugins' end-to-end tests
// and benchmarks: it builds the real binaries (calico, calico-ipam,
// calico-node) once per test binary, makes a "fabric" network namespace and
// one namespace per node wired to it by a veth, runs a real calico-node in
// each node namespace against one embedded etcd, and adds pods (each its own
// netns) with libcni exactly as containerd does: from the node's network
// namespace, with a conflist chaining calico before the reference portmap
// plugin.
//
// Everything it makes is removed by t.Cleanup: processes by PID, namespaces,
// temp dirs. It never touches the host's own network namespace, and traffic
// stays inside the namespaces it made. It must only be imported by tests.
package cnilab
