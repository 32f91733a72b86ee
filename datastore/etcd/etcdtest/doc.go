// Package etcdtest gives tests a real etcd: an embedded single-member server
// in the test's temporary directory, a connected datastore on it, and a TCP
// proxy that can cut the connection to it. Everything is torn down by
// t.Cleanup. It must only be imported from tests.
package etcdtest
