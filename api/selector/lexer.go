package selector

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

type tokKind uint8

const (
	tEOF tokKind = iota
	// tWord is a maximal run of label-key characters. Whether it is a
	// label key, a function name or an operator word ("in", "not",
	// "contains", "starts", "with", ...) depends on where the parser finds
	// it, which keeps words like "in" usable as label keys.
	tWord
	tString // text holds the value without its quotes
	tLParen
	tRParen
	tLBrace
	tRBrace
	tComma
	tEq  // ==
	tNe  // !=
	tNot // !
	tAnd // &&
	tOr  // ||
)

type token struct {
	kind     tokKind
	off, end int    // byte range in the input, for errors
	text     string // tWord and tString only
}

// lexer produces tokens on demand rather than up front so that errors are
// reported in input order: a parse error at offset 5 wins over a lexical
// error at offset 20.
type lexer struct {
	src string
	pos int
}

func (l *lexer) errorf(off int, format string, args ...any) *SyntaxError {
	return &SyntaxError{Selector: l.src, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func (l *lexer) next() (token, *SyntaxError) {
	for l.pos < len(l.src) && isSpace(l.src[l.pos]) {
		l.pos++
	}
	start := l.pos
	if start == len(l.src) {
		return token{kind: tEOF, off: start, end: start}, nil
	}
	c := l.src[start]
	var second byte
	if start+1 < len(l.src) {
		second = l.src[start+1]
	}
	kind := tEOF
	size := 1
	switch c {
	case '(':
		kind = tLParen
	case ')':
		kind = tRParen
	case '{':
		kind = tLBrace
	case '}':
		kind = tRBrace
	case ',':
		kind = tComma
	case '!':
		kind = tNot
		if second == '=' {
			kind, size = tNe, 2
		}
	case '=':
		if second != '=' {
			return token{}, l.errorf(start, `unexpected "=": the equality operator is "=="`)
		}
		kind, size = tEq, 2
	case '&':
		if second != '&' {
			return token{}, l.errorf(start, `unexpected "&": the AND operator is "&&"`)
		}
		kind, size = tAnd, 2
	case '|':
		if second != '|' {
			return token{}, l.errorf(start, `unexpected "|": the OR operator is "||"`)
		}
		kind, size = tOr, 2
	case '\'', '"':
		n := strings.IndexByte(l.src[start+1:], c)
		if n < 0 {
			return token{}, l.errorf(start,
				"unterminated string literal: no closing %s before end of input (escapes are not supported)",
				quoteChar(c))
		}
		l.pos = start + 1 + n + 1
		return token{kind: tString, off: start, end: l.pos, text: l.src[start+1 : start+1+n]}, nil
	default:
		if !isWordChar(c) {
			r, _ := utf8.DecodeRuneInString(l.src[start:])
			if r == utf8.RuneError {
				return token{}, l.errorf(start, "unexpected byte 0x%02x (invalid UTF-8)", c)
			}
			return token{}, l.errorf(start, "unexpected character %q (U+%04X)", r, r)
		}
		end := start + 1
		for end < len(l.src) && isWordChar(l.src[end]) {
			end++
		}
		l.pos = end
		return token{kind: tWord, off: start, end: end, text: l.src[start:end]}, nil
	}
	l.pos = start + size
	return token{kind: kind, off: start, end: l.pos}, nil
}

// peekByte returns the next non-space byte without consuming anything, or 0
// at end of input.
func (l *lexer) peekByte() byte {
	for i := l.pos; i < len(l.src); i++ {
		if !isSpace(l.src[i]) {
			return l.src[i]
		}
	}
	return 0
}

func quoteChar(c byte) string {
	if c == '"' {
		return `'"'`
	}
	return `"'"`
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// isWordChar is deliberately wider than a valid label key (it admits "_",
// "." and "-" anywhere) so that a malformed key lexes as one word and gets a
// specific "invalid label key" message instead of a confusing one about a
// stray character.
func isWordChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '.' || c == '-' || c == '/'
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isLowerAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
}

// checkLabelKey applies the Kubernetes label-key rules and returns why k
// breaks them, or "" if it does not.
func checkLabelKey(k string) string {
	name := k
	if i := strings.IndexByte(k, '/'); i >= 0 {
		prefix := k[:i]
		name = k[i+1:]
		if strings.IndexByte(name, '/') >= 0 {
			return `a label key may contain at most one "/"`
		}
		if why := checkDNSSubdomain(prefix); why != "" {
			return "prefix " + why
		}
	}
	switch {
	case name == "":
		return `the name after "/" is empty`
	case len(name) > 63:
		return fmt.Sprintf("the name part is %d characters long; the maximum is 63", len(name))
	case !isAlnum(name[0]) || !isAlnum(name[len(name)-1]):
		return "the name must start and end with a letter or digit"
	}
	// Every other word character is allowed inside a name.
	return ""
}

func checkDNSSubdomain(s string) string {
	switch {
	case s == "":
		return `before "/" is empty`
	case len(s) > 253:
		return fmt.Sprintf("is %d characters long; the maximum is 253", len(s))
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" {
			return fmt.Sprintf("%q is not a DNS subdomain: it has an empty label", s)
		}
		for j := 0; j < len(label); j++ {
			c := label[j]
			if !isLowerAlnum(c) && c != '-' {
				return fmt.Sprintf("%q is not a DNS subdomain: only lowercase letters, digits, '-' and '.' are allowed", s)
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Sprintf("%q is not a DNS subdomain: each dot-separated part must start and end with a letter or digit", s)
		}
	}
	return ""
}
