// Package calc turns what Felix knows (this node's workload endpoints and
// block affinities from the datastore, and routes learned over BGP) into the
// one desired dataplane.State. It is pure: no I/O, no clock, no goroutines,
// and the same input always gives the same State, whatever the order of its
// slices.
//
// It decides what the routes are, including which producer wins when two
// want the same prefix (a local workload beats a local block, which beats a
// remote route) and, in a later issue, the encapsulation of remote routes.
// It must not touch the kernel: only felix/dataplane does.
package calc
