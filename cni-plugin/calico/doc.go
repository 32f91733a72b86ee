// Package calico is the "calico" CNI plugin: ADD, DEL, CHECK, STATUS and GC
// (VERSION comes from skel), in the shape of the reference ptp plugin. ADD
// gets addresses from the IPAM plugin named in the netconf (calico-ipam runs
// in-process through package calicoipam, saving a process start per pod;
// host-local and others are exec'd), builds the veth pair through package
// dataplane, and has
// the calico-node agent record the endpoint and program the host route
// before the result is printed; any failure after IPAM undoes every earlier
// step, so a failed ADD leaks no address, link or endpoint.
//
// It must not write to the datastore or program host routes: both belong to
// the agent (ARCHITECTURE.md decisions 1 and 3).
package calico
