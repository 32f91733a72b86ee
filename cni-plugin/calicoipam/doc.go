// Package calicoipam is the "calico-ipam" CNI IPAM plugin: a thin client of
// the calico-node agent, which owns the node's IPAM blocks and serializes
// allocation per node. ADD asks the agent for addresses under the handle
// "k8s-pod-network.<containerID>", DEL releases the handle, STATUS and GC go
// to the agent too.
//
// It must not touch the kernel or the datastore.
package calicoipam
