package selector

import "fmt"

// Selector is a parsed selector; safe for concurrent use.
type Selector interface {
	// Evaluate reports whether the selector matches the labels. A nil map
	// is an object without labels.
	Evaluate(labels map[string]string) bool
	// String returns the canonical form, e.g. `(a == "b" && has(c))`.
	// Parse(s.String()) yields a selector that evaluates identically and
	// has the same String().
	String() string
}

// SyntaxError is the error type returned by Parse.
type SyntaxError struct {
	Selector string // the complete input, as given to Parse
	Offset   int    // byte offset into Selector where the problem was found
	Msg      string // what was expected and what was found
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("selector %q: offset %d: %s", e.Selector, e.Offset, e.Msg)
}

// Parse parses s. On failure the error is a *SyntaxError.
func Parse(s string) (Selector, error) {
	sel, err := parse(s)
	if err != nil {
		// Returning err directly would turn a nil *SyntaxError into a
		// non-nil error interface.
		return nil, err
	}
	return sel, nil
}

// MustParse is Parse for selectors known at compile time; it panics on error.
func MustParse(s string) Selector {
	sel, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return sel
}

// Validate reports whether s is a valid selector, returning the same error
// Parse would.
func Validate(s string) error {
	_, err := Parse(s)
	return err
}

// parsed is the only Selector implementation. The canonical string is
// computed once at parse time so that String is cheap and the value is
// immutable, which is what makes it safe to share between goroutines.
type parsed struct {
	root node
	str  string
}

func (s *parsed) Evaluate(labels map[string]string) bool { return s.root.eval(labels) }
func (s *parsed) String() string                         { return s.str }
