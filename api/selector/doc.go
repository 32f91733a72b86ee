// Package selector implements Calico's label-selector language: the
// expressions found in projectcalico.org/v3 fields such as
// IPPool.spec.nodeSelector, BGPPeer.spec.nodeSelector / peerSelector and
// NetworkPolicy.spec.selector.
//
// The package owns the language and nothing else: parsing a selector string,
// reporting syntax errors a human can act on, evaluating a parsed selector
// against a label map, and printing it in canonical form. It is pure — no
// I/O, no logging, no global mutable state — so admission validation, the
// controllers and the node agent can all share one implementation and agree
// on what a selector means.
//
// # Expressions
//
//	all()                  matches every label map
//	global()               matches label maps without the key projectcalico.org/namespace
//	has(k)                 k is present
//	k == 'v'               k is present and equal to v
//	k != 'v'               k is absent, or present and not equal to v
//	k in {'a', 'b'}        k is present and its value is in the set; {} matches nothing
//	k not in {'a', 'b'}    k is absent, or its value is not in the set; {} matches everything
//	k contains 's'         k is present and its value contains s
//	k starts with 's'      k is present and its value has prefix s
//	k ends with 's'        k is present and its value has suffix s
//	!e    e && e    e || e    (e)
//
// "!" binds tightest and applies to the single term that follows it, so
// `!a == 'x'` means `!(a == 'x')`. "&&" binds tighter than "||", so
// `a || b && c` means `a || (b && c)`. Both are left-associative. The empty
// selector (or one that is only whitespace) is all().
//
// global() deserves a note. In Calico it is only meaningful in a
// namespaceSelector, and Calico gives it meaning by rewriting it to
// `!has(projectcalico.org/namespace)` before evaluation: every namespaced
// endpoint carries that label, so its absence identifies non-namespaced
// resources (host endpoints, global network sets). Calico's bare evaluator
// treats global() like all(). This package evaluates global() as that
// rewrite directly, wherever it appears, so callers need no rewriting step.
//
// # Lexical rules
//
// String literals are delimited by single or double quotes and have no
// escapes, exactly as in Calico: a value may contain the other kind of quote
// but never its own delimiter. Values are compared byte-wise.
//
// Label keys follow the Kubernetes label-key syntax, because a key that
// Kubernetes would refuse can never be present and is almost certainly a
// typo: an optional prefix that is a lowercase DNS subdomain (at most 253
// characters) followed by "/", then a name of at most 63 characters matching
// [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?. The function names has, all and
// global and the operator words are only keywords where the grammar expects
// them, so "has" or "in" remain usable as label keys.
//
// Whitespace (space, tab, CR, LF) is allowed anywhere between tokens,
// including inside has( k ) and between the words of "not in",
// "starts with" and "ends with". For compatibility with selectors Calico
// already accepts, the run-together spellings "notin", "startswith" and
// "endswith" and a trailing comma in a set ({'a',}) are accepted too.
//
// # Canonical form
//
// Selector.String returns a canonical form: "&&" and "||" groups are always
// parenthesised, values use double quotes unless they contain one, set
// members are sorted and de-duplicated, and double negations are removed. It
// is a fixed point: parsing it yields a selector with the same String and
// the same behaviour, so it is safe to store, compare and hash.
//
// # Limits
//
// Nesting of parentheses and "!" is limited to 64 levels, as is the depth of
// the resulting expression tree, so hostile input produces a SyntaxError
// rather than unbounded recursion.
package selector
