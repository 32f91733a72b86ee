// Package felix is the node agent's workload dataplane loop: it keeps the
// kernel's workload routes, owned-block blackholes and workload sysctls in
// step with the datastore and with the CNI path.
//
// Following the kube-proxy pattern, event handlers (the datastore syncer's
// callbacks, UpsertWorkload, RemoveWorkload) only record intent and signal a
// one-slot channel; a single rate-limited loop computes the desired state
// with felix/calc and applies it with felix/dataplane. A timer resyncs fully
// every RouteRefreshInterval, repairing drift, and a failed apply is retried
// with backoff. Nothing is written to the kernel before the syncer reports
// the first full datastore sync: until then Felix does not know which routes
// are stale, and pruning on a partial view would cut live pods off.
//
// It must not write routes or sysctls itself (only felix/dataplane does),
// decide route shapes (felix/calc does), or write to the datastore.
package felix
