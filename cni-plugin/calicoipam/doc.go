// Package calicoipam is the "calico-ipam" CNI IPAM plugin: a thin client of
// the calico-node agent, which owns the node's IPAM blocks and serializes
// allocation per node. ADD asks the agent for addresses under the handle
// "k8s-pod-network.<containerID>", DEL releases the handle, STATUS and GC go
// to the agent too. The calico plugin runs ADD and DEL in-process (Assign,
// Release) when its "ipam.type" is calico-ipam, instead of exec'ing this
// plugin; the binary serves every other caller the same way.
//
// It must not touch the kernel or the datastore.
package calicoipam
