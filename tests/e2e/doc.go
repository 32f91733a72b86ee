// Package e2e holds the end-to-end tests of the calico and calico-ipam CNI
// plugins: real binaries, a real calico-node per node namespace on one
// embedded etcd, pods added with libcni as containerd adds them (calico
// chained before the reference portmap plugin), and assertions on packets
// (ping, a TCP connection through a port mapping), on the kernel and on the
// datastore. The harness is package cnilab. The tests are privileged: they
// skip without root, and fail instead when TABBY_REQUIRE_PRIVILEGED=1.
//
//	go test -count=1 -v ./tests/e2e/
package e2e
