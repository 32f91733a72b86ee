// Package v3 holds Tabby's copy of the projectcalico.org/v3 resource model:
// the Go types of every resource kind, their defaults, their validation and a
// strict YAML/JSON codec. The field names and YAML shape follow Calico's so that
// existing manifests and calicoctl files load unchanged.
//
// The package is pure: no I/O, no datastore, no kernel. Datastores store and
// return these types; calicoctl and the node agent read and write them.
package v3
