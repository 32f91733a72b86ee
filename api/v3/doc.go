// Package v3 holds Tabby's copy of the projectcalico.org/v3 resource model:
// the Go types of every resource kind, their defaults (SetDefaults), their
// validation (Validate, ValidatePoolOverlap) and a strict YAML/JSON codec
// (DecodeAll, EncodeYAML, EncodeJSON). The field names, defaults and YAML
// shape follow Calico's so that existing manifests and calicoctl files load
// unchanged.
//
// Decoding is strict in the Kubernetes sense and says where: an unknown
// field, a field in the wrong case or a wrongly typed value is reported with
// its path from the resource root (`IPPool "p1": unknown field "spec.cidrr"`),
// found by walking the decoded JSON against the Go types' json tags. YAML
// scalars are not coerced: an unquoted 1.10 or yes meant as a string is an
// error asking for quotes, because YAML has already turned it into 1.1 or
// true. Encoding omits a zero creationTimestamp (apimachinery tags it
// omitzero; decoding still accepts null) and a Node's empty status; kinds
// without a status in Calico have none.
//
// The package is pure: no I/O, no datastore, no kernel, no logging. Checks
// that need other resources (pool overlap) take them as arguments; checks
// against the stored version (immutable fields) belong to the caller.
// Datastores store and return these types; calicoctl and the node agent read
// and write them.
package v3
