package selector

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// maxNesting bounds two things. Syntactically, the nesting of "(" and "!",
// which is what protects the parser's own stack from hostile input. And the
// depth of the resulting tree, which protects eval and String and, because a
// canonical string nests exactly as deep as its tree, guarantees that
// String() of any accepted selector is accepted again. The second check is
// needed because precedence builds tree levels without parentheses:
// "a && b || c" nests 0 deep as written but 2 deep in canonical form.
const maxNesting = 64

// parser is a recursive-descent parser with one token of lookahead:
//
//	or    = and { "||" and }
//	and   = unary { "&&" unary }
//	unary = "!" unary | "(" or ")" | term
//	term  = "has" "(" key ")" | "all" "(" ")" | "global" "(" ")"
//	      | key ( "==" | "!=" | "contains" | "starts" "with" | "ends" "with" ) string
//	      | key ( "in" | "not" "in" ) "{" [ string { "," string } [ "," ] ] "}"
type parser struct {
	lex  lexer
	tok  token // current token, not yet consumed
	prev token // last consumed token, for "after X" in messages
	nest int   // current depth of "(" and "!"
}

func parse(s string) (*parsed, *SyntaxError) {
	p := &parser{lex: lexer{src: s}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tEOF {
		return &parsed{root: allNode{}, str: "all()"}, nil
	}
	root, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	switch p.tok.kind {
	case tEOF:
	case tRParen:
		return nil, p.errorf(p.tok.off, `unexpected ")" without a matching "("`)
	default:
		return nil, p.errorf(p.tok.off,
			`expected "&&", "||" or end of input after a complete expression, found %s%s`,
			p.describe(p.tok), p.connectiveHint())
	}
	return &parsed{root: root, str: string(root.appendTo(nil))}, nil
}

func (p *parser) advance() *SyntaxError {
	next, err := p.lex.next()
	if err != nil {
		return err
	}
	p.prev, p.tok = p.tok, next
	return nil
}

func (p *parser) errorf(off int, format string, args ...any) *SyntaxError {
	return p.lex.errorf(off, format, args...)
}

func (p *parser) parseOr() (node, *SyntaxError) {
	x, err := p.parseAnd()
	if err != nil || p.tok.kind != tOr {
		return x, err
	}
	opOff := p.tok.off
	xs := []node{x}
	for p.tok.kind == tOr {
		if err := p.advance(); err != nil {
			return nil, err
		}
		if x, err = p.parseAnd(); err != nil {
			return nil, err
		}
		xs = append(xs, x)
	}
	d := deepest(xs) + 1
	if d > maxNesting {
		return nil, p.tooComplex(opOff)
	}
	return &orNode{xs: xs, d: d}, nil
}

func (p *parser) parseAnd() (node, *SyntaxError) {
	x, err := p.parseUnary()
	if err != nil || p.tok.kind != tAnd {
		return x, err
	}
	opOff := p.tok.off
	xs := []node{x}
	for p.tok.kind == tAnd {
		if err := p.advance(); err != nil {
			return nil, err
		}
		if x, err = p.parseUnary(); err != nil {
			return nil, err
		}
		xs = append(xs, x)
	}
	d := deepest(xs) + 1
	if d > maxNesting {
		return nil, p.tooComplex(opOff)
	}
	return &andNode{xs: xs, d: d}, nil
}

func (p *parser) parseUnary() (node, *SyntaxError) {
	switch p.tok.kind {
	case tNot:
		notOff := p.tok.off
		if err := p.enter(); err != nil {
			return nil, err
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		p.nest--
		// Cancelling "!!" keeps the canonical form short and the tree
		// shallow; Calico does the same.
		if inner, ok := x.(*notNode); ok {
			return inner.x, nil
		}
		d := x.depth() + 1
		if d > maxNesting {
			return nil, p.tooComplex(notOff)
		}
		return &notNode{x: x, d: d}, nil

	case tLParen:
		open := p.tok
		if err := p.enter(); err != nil {
			return nil, err
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		x, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tRParen {
			return nil, p.errorf(p.tok.off, `expected "&&", "||" or ")" to close the "(" at offset %d, found %s%s`,
				open.off, p.describe(p.tok), p.connectiveHint())
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		p.nest--
		return x, nil

	case tWord:
		return p.parseTerm()
	}
	hint := ""
	if p.tok.kind == tString {
		hint = " (label keys are written without quotes)"
	}
	return nil, p.errorf(p.tok.off, "expected an expression%s, found %s%s", p.after(), p.describe(p.tok), hint)
}

func (p *parser) enter() *SyntaxError {
	p.nest++
	if p.nest > maxNesting {
		return p.errorf(p.tok.off, `nesting too deep: more than %d levels of "(" and "!"`, maxNesting)
	}
	return nil
}

func (p *parser) tooComplex(off int) *SyntaxError {
	return p.errorf(off, `expression too deeply nested: more than %d levels of "&&", "||" and "!"`, maxNesting)
}

func (p *parser) parseTerm() (node, *SyntaxError) {
	word := p.tok
	// Decide between function call and label key from the raw input, not
	// by lexing on: lexing the next token first could report an error that
	// lies after a bad key, breaking "first error in input order".
	if p.lex.peekByte() == '(' {
		return p.parseCall(word)
	}
	if why := checkLabelKey(word.text); why != "" {
		return nil, p.errorf(word.off, "invalid label key %q: %s", word.text, why)
	}
	key := word.text
	if err := p.advance(); err != nil {
		return nil, err
	}
	op := p.tok
	switch op.kind {
	case tEq:
		return p.compare(key, opEq, "==")
	case tNe:
		return p.compare(key, opNe, "!=")
	case tWord:
		switch op.text {
		case "in":
			return p.parseSet(key, false, "in")
		case "notin":
			return p.parseSet(key, true, "notin")
		case "not":
			if err := p.expectWord("in", "not"); err != nil {
				return nil, err
			}
			return p.parseSet(key, true, "not in")
		case "contains":
			return p.compare(key, opContains, "contains")
		case "startswith":
			return p.compare(key, opStartsWith, "startswith")
		case "endswith":
			return p.compare(key, opEndsWith, "endswith")
		case "starts":
			if err := p.expectWord("with", "starts"); err != nil {
				return nil, err
			}
			return p.compare(key, opStartsWith, "starts with")
		case "ends":
			if err := p.expectWord("with", "ends"); err != nil {
				return nil, err
			}
			return p.compare(key, opEndsWith, "ends with")
		}
	}
	hint := ""
	switch key {
	case "has":
		hint = `; did you mean "has(...)"?`
	case "all", "global":
		hint = fmt.Sprintf(`; did you mean "%s()"?`, key)
	case "not", "NOT":
		hint = `; negation is written "!"`
	}
	return nil, p.errorf(op.off,
		"expected an operator after label key %q (==, !=, in, not in, contains, starts with, ends with), found %s%s",
		key, p.describe(op), hint)
}

// expectWord consumes the current token (the first word of a two-word
// operator) and requires the next one to be want.
func (p *parser) expectWord(want, after string) *SyntaxError {
	if err := p.advance(); err != nil {
		return err
	}
	if p.tok.kind != tWord || p.tok.text != want {
		return p.errorf(p.tok.off, "expected %q after %q, found %s", want, after, p.describe(p.tok))
	}
	return nil
}

// compare consumes the current token (the last of the operator) and the
// string literal after it.
func (p *parser) compare(key string, op cmpOp, opText string) (node, *SyntaxError) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind != tString {
		return nil, p.errorf(p.tok.off, "expected a quoted string after %q, found %s%s",
			opText, p.describe(p.tok), p.quoteHint())
	}
	n := &cmpNode{key: key, op: op, value: p.tok.text}
	if err := p.advance(); err != nil {
		return nil, err
	}
	return n, nil
}

// parseSet consumes the current token (the last of the operator) and the
// set literal after it.
func (p *parser) parseSet(key string, negate bool, opText string) (node, *SyntaxError) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind != tLBrace {
		return nil, p.errorf(p.tok.off, `expected "{" to start a set after %q, found %s`, opText, p.describe(p.tok))
	}
	open := p.tok.off
	if err := p.advance(); err != nil {
		return nil, err
	}
	var values []string
	for p.tok.kind != tRBrace {
		if p.tok.kind != tString {
			return nil, p.errorf(p.tok.off, `expected a quoted string or "}" in the set opened at offset %d, found %s%s`,
				open, p.describe(p.tok), p.quoteHint())
		}
		values = append(values, p.tok.text)
		if err := p.advance(); err != nil {
			return nil, err
		}
		switch p.tok.kind {
		case tComma:
			if err := p.advance(); err != nil {
				return nil, err
			}
		case tRBrace:
		default:
			return nil, p.errorf(p.tok.off, `expected "," or "}" in the set opened at offset %d, found %s`,
				open, p.describe(p.tok))
		}
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	slices.Sort(values)
	return &setNode{key: key, values: slices.Compact(values), negate: negate}, nil
}

// parseCall is entered with the function name as the current token and "("
// known to follow it.
func (p *parser) parseCall(name token) (node, *SyntaxError) {
	switch name.text {
	case "has", "all", "global":
	default:
		return nil, p.errorf(name.off, "unknown function %q: the functions are has(), all() and global()",
			clip(name.text)+"()")
	}
	if err := p.advance(); err != nil { // the name
		return nil, err
	}
	if err := p.advance(); err != nil { // "("
		return nil, err
	}
	var n node
	switch name.text {
	case "all":
		n = allNode{}
	case "global":
		n = globalNode{}
	case "has":
		if p.tok.kind != tWord {
			hint := ""
			if p.tok.kind == tString {
				hint = " (label keys are written without quotes)"
			}
			return nil, p.errorf(p.tok.off, `expected a label key after "has(", found %s%s`, p.describe(p.tok), hint)
		}
		if why := checkLabelKey(p.tok.text); why != "" {
			return nil, p.errorf(p.tok.off, "invalid label key %q: %s", p.tok.text, why)
		}
		n = &hasNode{key: p.tok.text}
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind != tRParen {
			return nil, p.errorf(p.tok.off, `expected ")" to close "has(", found %s`, p.describe(p.tok))
		}
	}
	if p.tok.kind != tRParen {
		return nil, p.errorf(p.tok.off, `%s() takes no arguments: expected ")", found %s`, name.text, p.describe(p.tok))
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	return n, nil
}

// describe names a token the way a user would recognise it in their input.
func (p *parser) describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of input"
	case tString:
		return "string " + strconv.Quote(clip(t.text))
	}
	return strconv.Quote(clip(p.lex.src[t.off:t.end]))
}

// after gives context for "expected an expression" errors: the token just
// consumed, if any.
func (p *parser) after() string {
	if p.prev.end == 0 { // nothing consumed yet
		return ""
	}
	return " after " + strconv.Quote(clip(p.lex.src[p.prev.off:p.prev.end]))
}

// connectiveHint catches the most common slip where "&&" or "||" belongs.
func (p *parser) connectiveHint() string {
	if p.tok.kind == tWord {
		switch strings.ToLower(p.tok.text) {
		case "and", "or":
			return ` (the operators are "&&" and "||")`
		}
	}
	return ""
}

func (p *parser) quoteHint() string {
	if p.tok.kind == tWord {
		return " (values must be quoted)"
	}
	return ""
}

// clip keeps messages readable when the offending token is huge.
func clip(s string) string {
	const limit = 40
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}
