package selector

import (
	"slices"
	"strings"
)

// namespaceLabel is the label Calico puts on every namespaced endpoint;
// global() is defined by its absence.
const namespaceLabel = "projectcalico.org/namespace"

// node is one term of a parsed selector. Nodes are immutable once built.
type node interface {
	// eval must not allocate: selectors are evaluated for every endpoint
	// on every policy or pool change.
	eval(labels map[string]string) bool
	// appendTo writes the canonical form.
	appendTo(b []byte) []byte
	// depth counts the "&&", "||" and "!" nodes on the longest path from
	// this node down. It equals the nesting of the canonical form, which
	// is what lets the parser guarantee that String() re-parses.
	depth() int
}

type allNode struct{}

func (allNode) eval(map[string]string) bool { return true }
func (allNode) appendTo(b []byte) []byte    { return append(b, "all()"...) }
func (allNode) depth() int                  { return 0 }

type globalNode struct{}

func (globalNode) eval(labels map[string]string) bool {
	_, namespaced := labels[namespaceLabel]
	return !namespaced
}
func (globalNode) appendTo(b []byte) []byte { return append(b, "global()"...) }
func (globalNode) depth() int               { return 0 }

type hasNode struct{ key string }

func (n *hasNode) eval(labels map[string]string) bool {
	_, ok := labels[n.key]
	return ok
}

func (n *hasNode) appendTo(b []byte) []byte {
	b = append(b, "has("...)
	b = append(b, n.key...)
	return append(b, ')')
}

func (n *hasNode) depth() int { return 0 }

type cmpOp uint8

const (
	opEq cmpOp = iota
	opNe
	opContains
	opStartsWith
	opEndsWith
)

var cmpOpText = [...]string{
	opEq:         " == ",
	opNe:         " != ",
	opContains:   " contains ",
	opStartsWith: " starts with ",
	opEndsWith:   " ends with ",
}

// cmpNode covers every operator that compares a label with one string.
type cmpNode struct {
	key   string
	op    cmpOp
	value string
}

func (n *cmpNode) eval(labels map[string]string) bool {
	v, ok := labels[n.key]
	if !ok {
		// Calico: "k != 'v'" holds for objects that lack k entirely.
		return n.op == opNe
	}
	switch n.op {
	case opEq:
		return v == n.value
	case opNe:
		return v != n.value
	case opContains:
		return strings.Contains(v, n.value)
	case opStartsWith:
		return strings.HasPrefix(v, n.value)
	case opEndsWith:
		return strings.HasSuffix(v, n.value)
	}
	return false
}

func (n *cmpNode) appendTo(b []byte) []byte {
	b = append(b, n.key...)
	b = append(b, cmpOpText[n.op]...)
	return appendQuoted(b, n.value)
}

func (n *cmpNode) depth() int { return 0 }

// setNode is "k in {...}" or, with negate, "k not in {...}".
type setNode struct {
	key    string
	values []string // sorted and unique: canonical output and binary search
	negate bool
}

func (n *setNode) eval(labels map[string]string) bool {
	v, ok := labels[n.key]
	if !ok {
		return n.negate
	}
	_, found := slices.BinarySearch(n.values, v)
	return found != n.negate
}

func (n *setNode) appendTo(b []byte) []byte {
	b = append(b, n.key...)
	if n.negate {
		b = append(b, " not in {"...)
	} else {
		b = append(b, " in {"...)
	}
	for i, v := range n.values {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendQuoted(b, v)
	}
	return append(b, '}')
}

func (n *setNode) depth() int { return 0 }

type notNode struct {
	x node
	d int
}

func (n *notNode) eval(labels map[string]string) bool { return !n.x.eval(labels) }

func (n *notNode) appendTo(b []byte) []byte {
	// No parentheses needed: the operand is either a single term or an
	// already-parenthesised "&&"/"||" group.
	return n.x.appendTo(append(b, '!'))
}

func (n *notNode) depth() int { return n.d }

// andNode and orNode hold all operands of a run of the same operator, so
// "a && b && c" is one node rather than a lopsided tree: shallower, and
// printed the way it was written.
type andNode struct {
	xs []node
	d  int
}

func (n *andNode) eval(labels map[string]string) bool {
	for _, x := range n.xs {
		if !x.eval(labels) {
			return false
		}
	}
	return true
}

func (n *andNode) appendTo(b []byte) []byte { return appendGroup(b, n.xs, " && ") }
func (n *andNode) depth() int               { return n.d }

type orNode struct {
	xs []node
	d  int
}

func (n *orNode) eval(labels map[string]string) bool {
	for _, x := range n.xs {
		if x.eval(labels) {
			return true
		}
	}
	return false
}

func (n *orNode) appendTo(b []byte) []byte { return appendGroup(b, n.xs, " || ") }
func (n *orNode) depth() int               { return n.d }

// appendGroup always parenthesises, even at the top level, so the canonical
// form never depends on operator precedence (and matches Calico's).
func appendGroup(b []byte, xs []node, sep string) []byte {
	b = append(b, '(')
	for i, x := range xs {
		if i > 0 {
			b = append(b, sep...)
		}
		b = x.appendTo(b)
	}
	return append(b, ')')
}

// appendQuoted prefers double quotes and falls back to single quotes. The
// language has no escapes, so a literal cannot hold both kinds; either choice
// therefore always round-trips.
func appendQuoted(b []byte, s string) []byte {
	q := byte('"')
	if strings.IndexByte(s, '"') >= 0 {
		q = '\''
	}
	b = append(b, q)
	b = append(b, s...)
	return append(b, q)
}

func deepest(xs []node) int {
	d := 0
	for _, x := range xs {
		d = max(d, x.depth())
	}
	return d
}
