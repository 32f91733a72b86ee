// Package dataplane is the only code in Tabby that writes routes and sysctls.
// It takes a desired State as a value and reconciles the kernel to it with one
// idempotent Reconciler.Apply: any State may follow any other, and calling
// Apply twice with the same State changes nothing the second time.
//
// Ownership: every route Tabby writes carries RouteProtocol (98). A route of
// any other protocol is never modified or deleted, even at a destination Tabby
// wants; pruning looks only at protocol-98 routes in the main table.
//
// The package talks to the kernel through two narrow seams, Netlink (four
// route/link calls, satisfied by *netlink.Handle) and Sysctls (/proc/sys
// files), so unit tests run against dataplanetest.Kernel, a fake that models
// kernel state as text, and privileged tests run the same code against a real
// kernel inside a network namespace.
//
// It must not decide what the routes are (that is felix/calc), read the
// datastore, or run its own timers: the caller (package felix) owns the loop,
// rate limiting, resync and retries.
package dataplane
