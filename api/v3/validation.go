package v3

import (
	"fmt"
	"strings"
)

// FieldError is one problem with one field.
type FieldError struct {
	Field  string // path from the resource root: "spec.cidr", "spec.ingress[0].source.nets[1]"
	Reason string // what is wrong, with the offending value quoted: `"10.0.0.0/33" is not a valid CIDR`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Reason }

// ValidationError lists every problem found in one resource.
type ValidationError struct {
	Kind      string
	Namespace string
	Name      string
	Errors    []FieldError
}

// Error reads `IPPool "p1": spec.cidr: "10.0.0.0/33" is not a valid CIDR`,
// with several problems joined by "; ".
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Error()
	}
	name := e.Name
	if e.Namespace != "" {
		name = e.Namespace + "/" + e.Name
	}
	return fmt.Sprintf("%s %q: %s", e.Kind, name, strings.Join(parts, "; "))
}
