// Package etcd is the etcd v3 backend of the datastore interface, and an
// embedded single-node etcd server for one-machine setups, labs and tests.
//
// It owns the key layout, which is Calico's etcdv3 layout so that a Calico
// etcd cluster and Tabby read the same keys:
//
//	/calico/resources/v3/projectcalico.org/<plural>/<name>              cluster-scoped kinds
//	/calico/resources/v3/projectcalico.org/<plural>/<namespace>/<name>  namespaced kinds
//
// The value is the resource's JSON without resourceVersion; on read the
// resourceVersion is the key's etcd mod revision in decimal. Every write is an
// etcd transaction that compares the revision, so concurrent writers never
// lose an update.
//
// It stores what it is given: validation and defaulting belong to callers
// (api/v3). It must not log on the request path; failures are returned as
// *datastore.Error values wrapping the datastore sentinels.
package etcd
