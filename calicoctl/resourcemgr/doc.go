// Package resourcemgr holds calicoctl's knowledge of each resource kind that
// is not part of the resource model itself: the ps/wide table columns Calico's
// calicoctl prints for every kind, the output printers (table, custom
// columns, YAML, JSON, Go templates) and the patch operations.
//
// It is pure: it never opens a file or a datastore. Anything a column needs
// from the datastore (the cluster's default AS number for a Node's ASN column)
// comes in through a Lookup supplied by the caller.
package resourcemgr
