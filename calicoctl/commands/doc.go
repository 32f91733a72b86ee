// Package commands is calicoctl's command tree: create, apply, replace,
// delete, get, patch, label, validate and version, with Calico's flags,
// messages and exit status. It owns turning files and arguments into
// checked writes (decode, defaults, validation, IP pool overlap and the
// datastore's preconditions for every document before any write) and
// reporting what was and was not written when a write fails half-way.
//
// It must not hold global state: New builds an independent CLI around the
// writers and environment it is given, so tests run many in one process and
// other packages (ipam, node) add their command groups with AddCommand and
// reach the datastore through CLI.Datastore.
package commands
