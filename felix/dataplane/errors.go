package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
)

// Sentinel causes inside RouteError and IfaceError (test with errors.Is).
var (
	// ErrConflict: a route of another protocol holds the exact
	// destination and metric Tabby wants. Tabby leaves it alone.
	ErrConflict = errors.New("a route of another owner holds this destination and metric")
	// ErrNoInterface: the route's device does not exist (yet): the CNI
	// plugin may still be creating the veth. The next apply retries.
	ErrNoInterface = errors.New("interface does not exist")
	// ErrInvalidRoute: the desired route cannot be expressed in the kernel.
	ErrInvalidRoute = errors.New("invalid route")
)

// RouteError is the failure of one desired or stale route. Apply joins one
// per failed route, so callers can find the failure of the routes they care
// about with Failures.
type RouteError struct {
	Op    string // "replace", "delete", "resolve", "validate"
	Route Route
	Err   error
}

func (e *RouteError) Error() string {
	return fmt.Sprintf("%s route %s: %v", e.Op, e.Route, e.Err)
}
func (e *RouteError) Unwrap() error { return e.Err }

// IfaceError is the failure to configure one workload interface's sysctls.
type IfaceError struct {
	Iface string
	Err   error
}

func (e *IfaceError) Error() string {
	return fmt.Sprintf("configure workload interface %s: %v", e.Iface, e.Err)
}
func (e *IfaceError) Unwrap() error { return e.Err }

// Failures flattens an error returned by Apply into its parts: *RouteError,
// *IfaceError and plain errors (a failed dump, a global sysctl).
func Failures(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Failures(e)...)
		}
		return out
	}
	return []error{err}
}

// RouteFailure returns the joined failures of the route to dst in an error
// returned by Apply, or nil when that route did not fail.
func RouteFailure(err error, dst netip.Prefix) error {
	var out []error
	for _, e := range Failures(err) {
		var re *RouteError
		if errors.As(e, &re) && re.Route.Dst == dst {
			out = append(out, e)
		}
	}
	return errors.Join(out...)
}

// IfaceFailure is RouteFailure for a workload interface.
func IfaceFailure(err error, iface string) error {
	var out []error
	for _, e := range Failures(err) {
		var ie *IfaceError
		if errors.As(e, &ie) && ie.Iface == iface {
			out = append(out, e)
		}
	}
	return errors.Join(out...)
}
