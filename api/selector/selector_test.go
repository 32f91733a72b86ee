package selector

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

var (
	worker = map[string]string{
		"role":                   "worker",
		"zone":                   "us-east-1a",
		"kubernetes.io/hostname": "node-1",
		"rack":                   "r12",
		"empty":                  "",
	}
	pod = map[string]string{
		"app":                         "web",
		"tier":                        "frontend",
		"projectcalico.org/namespace": "default",
	}
)

func labels(kv ...string) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

type evalCase struct {
	sel    string
	labels map[string]string
	want   bool
}

var evalCases = []evalCase{
	// all() and the empty selector.
	{"all()", worker, true},
	{"all()", nil, true},
	{"", nil, true},
	{" \t ", pod, true},
	{"!all()", worker, false},

	// global(): only objects without projectcalico.org/namespace.
	{"global()", worker, true},
	{"global()", pod, false},
	{"global()", nil, true},
	{"!global()", pod, true},

	// has()
	{"has(role)", worker, true},
	{"has(role)", pod, false},
	{"has(empty)", worker, true},
	{"!has(role)", pod, true},
	{"!has(role)", worker, false},
	{"has(projectcalico.org/namespace)", pod, true},
	{"has( kubernetes.io/hostname )", worker, true},

	// ==
	{"role == 'worker'", worker, true},
	{`role == "master"`, worker, false},
	{"role == 'worker'", nil, false},
	{"empty == ''", worker, true},
	{"missing == ''", worker, false},

	// != also matches when the key is absent.
	{"role != 'master'", worker, true},
	{"role != 'worker'", worker, false},
	{"role != 'worker'", pod, true},
	{"role != 'worker'", nil, true},
	{"empty != ''", worker, false},

	// in / not in, including empty sets and absent keys.
	{"zone in {'us-east-1a', 'us-east-1b'}", worker, true},
	{"zone in {'us-west-1a'}", worker, false},
	{"zone in {}", worker, false},
	{"zone in {'x'}", pod, false},
	{"zone not in {'us-west-1a'}", worker, true},
	{"zone not in {'us-east-1a'}", worker, false},
	{"zone not in {}", worker, true},
	{"zone not in {'x'}", pod, true},
	{"zone notin {'us-east-1a',}", worker, false},
	{"empty in {''}", worker, true},

	// contains / starts with / ends with are false for absent keys.
	{"zone contains 'east'", worker, true},
	{"zone contains 'west'", worker, false},
	{"zone contains ''", worker, true},
	{"zone contains ''", pod, false},
	{"rack starts with 'r1'", worker, true},
	{"rack starts with 'r2'", worker, false},
	{"rack starts with ''", pod, false},
	{"rack startswith 'r'", worker, true},
	{"kubernetes.io/hostname ends with '-1'", worker, true},
	{"kubernetes.io/hostname ends with '-2'", worker, false},
	{"tier endswith 'end'", pod, true},
	{"x ends with ''", nil, false},

	// Prefixed keys.
	{"projectcalico.org/namespace == 'default'", pod, true},
	{"projectcalico.org/namespace == 'default' && app == 'web'", pod, true},
	{"projectcalico.org/namespace != 'default'", worker, true},

	// Precedence: && binds tighter than ||.
	{"has(a) || has(b) && has(c)", labels("a", ""), true},
	{"has(a) || has(b) && has(c)", labels("b", ""), false},
	{"has(a) && has(b) || has(c)", labels("c", ""), true},
	{"(has(a) || has(b)) && has(c)", labels("a", ""), false},
	{"has(a) || has(b) || has(c)", labels("c", ""), true},
	{"has(a) && has(b) && has(c)", labels("a", "", "b", ""), false},

	// ! applies to the single term after it.
	{"!a == 'x'", labels("a", "x"), false},
	{"!a == 'x'", labels("a", "y"), true},
	{"!a == 'x'", nil, true},
	{"!a == 'x' && has(b)", labels("b", ""), true},
	{"!a == 'x' && has(b)", labels("a", "x", "b", ""), false},
	{"!(has(a) || has(b))", nil, true},
	{"!(has(a) || has(b))", labels("b", ""), false},
	{"!!has(a)", labels("a", ""), true},
	{"!(a in {'x'})", labels("a", "y"), true},
	{"!a in {'x'} || has(b)", labels("a", "x"), false},

	// Operator words and function names are usable as label keys.
	{"in == 'x'", labels("in", "x"), true},
	{"has == 'x' && has(has)", labels("has", "x"), true},
	{"not not in {'a'}", labels("not", "b"), true},

	// Whitespace and quoting.
	{"role=='worker'&&zone  in{'us-east-1a'}", worker, true},
	{"role == 'worker'\n\t|| has(x)", worker, true},
	{`v == "it's"`, labels("v", "it's"), true},
	{`v == 'say "hi"'`, labels("v", `say "hi"`), true},
	{"has(a) || a != 'x'", nil, true},

	// A realistic node selector.
	{"role == 'worker' && zone in {'us-east-1a'} && !has(tainted) && rack starts with 'r1'", worker, true},
	{"role == 'worker' && zone in {'us-east-1a'} && !has(rack) && rack starts with 'r1'", worker, false},
}

func TestEvaluate(t *testing.T) {
	for _, tc := range evalCases {
		sel, err := Parse(tc.sel)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.sel, err)
			continue
		}
		if got := sel.Evaluate(tc.labels); got != tc.want {
			t.Errorf("Parse(%q).Evaluate(%v) = %v, want %v (canonical %s)", tc.sel, tc.labels, got, tc.want, sel)
		}
		// The canonical form must mean the same thing.
		again := MustParse(sel.String())
		if got := again.Evaluate(tc.labels); got != tc.want {
			t.Errorf("canonical %q of %q evaluates to %v, want %v", sel, tc.sel, got, tc.want)
		}
	}
}

type stringCase struct {
	in, want string
}

var stringCases = []stringCase{
	{"", "all()"},
	{"all()", "all()"},
	{" global ( ) ", "global()"},
	{"has( a )", "has(a)"},
	{"a=='b'", `a == "b"`},
	{`a == 'say "hi"'`, `a == 'say "hi"'`},
	{`a != "it's"`, `a != "it's"`},
	{"a in {'b', 'a', 'b'}", `a in {"a", "b"}`},
	{`a in {'x"y', "z"}`, `a in {'x"y', "z"}`},
	{"a notin {}", "a not in {}"},
	{"a not  in {'x',}", `a not in {"x"}`},
	{"a contains 'x'", `a contains "x"`},
	{"a startswith 'x'", `a starts with "x"`},
	{"a ends  with 'x'", `a ends with "x"`},
	{"a == 'b' && has(c)", `(a == "b" && has(c))`},
	{"has(a) || has(b) && has(c)", "(has(a) || (has(b) && has(c)))"},
	{"(has(a) || has(b)) && has(c)", "((has(a) || has(b)) && has(c))"},
	{"has(a) && has(b) && has(c)", "(has(a) && has(b) && has(c))"},
	{"(has(a) && has(b)) && has(c)", "((has(a) && has(b)) && has(c))"},
	{"!a == 'x'", `!a == "x"`},
	{"!!a == 'x'", `a == "x"`},
	{"!(!has(a))", "has(a)"},
	{"!(has(a) || has(b))", "!(has(a) || has(b))"},
	{"((((has(a)))))", "has(a)"},
	{"projectcalico.org/namespace == 'default'", `projectcalico.org/namespace == "default"`},
}

func TestString(t *testing.T) {
	for _, tc := range stringCases {
		sel, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := sel.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
		again, err := Parse(sel.String())
		if err != nil {
			t.Errorf("re-parsing canonical %q: %v", sel, err)
			continue
		}
		if again.String() != sel.String() {
			t.Errorf("canonical form is not a fixed point: %q -> %q", sel, again)
		}
	}
}

type errorCase struct {
	sel    string
	offset int
	msg    string // substring of SyntaxError.Msg
}

var errorCases = []errorCase{
	{"a == 'b' &&", 11, `expected an expression after "&&", found end of input`},
	{"a in {'x'} || ", 14, `expected an expression after "||", found end of input`},
	{"a ==", 4, `expected a quoted string after "==", found end of input`},
	{"a != b", 5, `expected a quoted string after "!=", found "b" (values must be quoted)`},
	{"a == 'b", 5, `unterminated string literal: no closing "'"`},
	{`a == "b`, 5, `unterminated string literal: no closing '"'`},
	{"(a == 'b'", 9, `expected "&&", "||" or ")" to close the "(" at offset 0, found end of input`},
	{"(has(a) has(b))", 8, `to close the "(" at offset 0, found "has"`},
	{"a == 'b')", 8, `unexpected ")" without a matching "("`},
	{"foo()", 0, `unknown function "foo()"`},
	{"Has(a)", 0, `unknown function "Has()"`},
	{"-a == 'x'", 0, `invalid label key "-a": the name must start and end with a letter or digit`},
	{"a- == 'x'", 0, `invalid label key "a-"`},
	{"has(-a)", 4, `invalid label key "-a"`},
	{"has()", 4, `expected a label key after "has(", found ")"`},
	{"has('a')", 4, `found string "a" (label keys are written without quotes)`},
	{"has(a", 5, `expected ")" to close "has(", found end of input`},
	{"all(x)", 4, `all() takes no arguments: expected ")", found "x"`},
	{"a = 'b'", 2, `unexpected "=": the equality operator is "=="`},
	{"has(a) & has(b)", 7, `unexpected "&": the AND operator is "&&"`},
	{"has(a) | has(b)", 7, `unexpected "|": the OR operator is "||"`},
	{"a", 1, `expected an operator after label key "a" (==, !=, in, not in, contains, starts with, ends with), found end of input`},
	{"a == 'x' && b", 13, `expected an operator after label key "b"`},
	{"all", 3, `did you mean "all()"?`},
	{"a in 'x'", 5, `expected "{" to start a set after "in", found string "x"`},
	{"a in {'x' 'y'}", 10, `expected "," or "}" in the set opened at offset 5, found string "y"`},
	{"a not in {'x'", 13, `expected "," or "}" in the set opened at offset 9, found end of input`},
	{"a in {,}", 6, `expected a quoted string or "}" in the set opened at offset 5, found ","`},
	{"a in {x}", 6, `found "x" (values must be quoted)`},
	{"a not 'x'", 6, `expected "in" after "not", found string "x"`},
	{"a starts 'x'", 9, `expected "with" after "starts"`},
	{"a ends with", 11, `expected a quoted string after "ends with", found end of input`},
	{"()", 1, `expected an expression after "(", found ")"`},
	{"!", 1, `expected an expression after "!", found end of input`},
	{"&& a", 0, `expected an expression, found "&&"`},
	{"'a' == 'b'", 0, `expected an expression, found string "a" (label keys are written without quotes)`},
	{"has(a) and has(b)", 7, `found "and" (the operators are "&&" and "||")`},
	{"not has(a)", 4, `expected an operator after label key "not"`},
	{"has(a) has(b)", 7, `expected "&&", "||" or end of input after a complete expression, found "has"`},
	{"a == 'x' ; b", 9, `unexpected character ';'`},
	{"a == 'é' && é", 13, `unexpected character 'é' (U+00E9)`},
	{"a == 'x' && \xff", 12, `unexpected byte 0xff (invalid UTF-8)`},
	{"Example.com/a == 'x'", 0, `prefix "Example.com" is not a DNS subdomain`},
	{"a..b/c == 'x'", 0, `it has an empty label`},
	{"-a.b/c == 'x'", 0, `must start and end with a letter or digit`},
	{"a/b/c == 'x'", 0, `at most one "/"`},
	{"/a == 'x'", 0, `prefix before "/" is empty`},
	{"a/ == 'x'", 0, `the name after "/" is empty`},
	{strings.Repeat("a", 64) + " == 'x'", 0, "the name part is 64 characters long; the maximum is 63"},
	{strings.Repeat("a", 254) + "/b == 'x'", 0, "is 254 characters long; the maximum is 253"},
	{strings.Repeat("(", 65) + "has(a)" + strings.Repeat(")", 65), 64, `nesting too deep: more than 64 levels`},
	{strings.Repeat("(", 100) + "has(a)" + strings.Repeat(")", 100), 64, `nesting too deep`},
	{strings.Repeat("!", 100) + "has(a)", 64, `nesting too deep`},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range errorCases {
		sel, err := Parse(tc.sel)
		if err == nil {
			t.Errorf("Parse(%q) = %s, want an error", tc.sel, sel)
			continue
		}
		if sel != nil {
			t.Errorf("Parse(%q) returned a selector together with an error", tc.sel)
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) error %T is not a *SyntaxError", tc.sel, err)
			continue
		}
		if se.Selector != tc.sel {
			t.Errorf("Parse(%q): SyntaxError.Selector = %q", tc.sel, se.Selector)
		}
		if se.Offset != tc.offset || !strings.Contains(se.Msg, tc.msg) {
			t.Errorf("Parse(%q):\n got offset %d: %s\nwant offset %d: ...%s...", tc.sel, se.Offset, se.Msg, tc.offset, tc.msg)
		}
		if verr := Validate(tc.sel); verr == nil || verr.Error() != err.Error() {
			t.Errorf("Validate(%q) = %v, want %v", tc.sel, verr, err)
		}
	}
}

func TestSyntaxErrorText(t *testing.T) {
	_, err := Parse("a == 'b' &&")
	want := `selector "a == 'b' &&": offset 11: expected an expression after "&&", found end of input`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

func TestLabelKeys(t *testing.T) {
	valid := []string{
		"a", "A", "0", "a.b-c_d", "x.Y", "kubernetes.io/hostname", "projectcalico.org/namespace",
		"pcns.kubernetes.io/metadata.name", "topology.kubernetes.io/zone", "a-b.c/X_y",
		strings.Repeat("n", 63), strings.Repeat("p", 253) + "/n",
	}
	for _, k := range valid {
		if why := checkLabelKey(k); why != "" {
			t.Errorf("checkLabelKey(%q) = %q, want valid", k, why)
		}
		sel, err := Parse("has(" + k + ")")
		if err != nil {
			t.Errorf("has(%s): %v", k, err)
		} else if !sel.Evaluate(map[string]string{k: ""}) {
			t.Errorf("has(%s) does not match a map containing it", k)
		}
	}
	invalid := []string{"_a", "a_", ".a", "a.", "a/", "/a", "a/b/c", "A.b/c", "a-/b", "a..b/c", "a_b/c"}
	for _, k := range invalid {
		if checkLabelKey(k) == "" {
			t.Errorf("checkLabelKey(%q) accepted an invalid key", k)
		}
	}
}

// The tree-depth limit matters where precedence adds levels that the input
// does not spell out with parentheses; the canonical form of a selector just
// inside the limit must still parse.
func TestDepthLimits(t *testing.T) {
	deep := func(levels int) string {
		s := "has(c)"
		for range levels {
			s = "has(a) || has(b) && (" + s + ")"
		}
		return s
	}
	sel, err := Parse(deep(32)) // tree depth 64, 32 parentheses
	if err != nil {
		t.Fatalf("depth 64: %v", err)
	}
	again, err := Parse(sel.String())
	if err != nil {
		t.Fatalf("canonical form of a depth-64 selector does not parse: %v", err)
	}
	if again.String() != sel.String() {
		t.Fatalf("canonical form is not a fixed point")
	}
	in := deep(33)
	_, err = Parse(in)
	var se *SyntaxError
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "expression too deeply nested") {
		t.Fatalf("depth 66: got %v, want a too-deeply-nested error", err)
	}
	if op := in[se.Offset : se.Offset+2]; op != "&&" && op != "||" {
		t.Errorf("depth error points at %q, want an operator", op)
	}

	if _, err := Parse(strings.Repeat("(", 64) + "has(a)" + strings.Repeat(")", 64)); err != nil {
		t.Errorf("64 parentheses: %v", err)
	}
	if _, err := Parse(strings.Repeat("!", 64) + "has(a)"); err != nil {
		t.Errorf("64 negations: %v", err)
	}
	// Huge inputs must fail fast rather than exhaust the stack.
	for _, s := range []string{strings.Repeat("(", 1<<20), strings.Repeat("!", 1<<20)} {
		if _, err := Parse(s); err == nil {
			t.Errorf("%d bytes of %q parsed", len(s), s[:1])
		}
	}
	// Long flat chains are not nesting and must be accepted.
	chain := strings.Repeat("has(a) && ", 10000) + "has(b)"
	if _, err := Parse(chain); err != nil {
		t.Errorf("long && chain: %v", err)
	}
}

func TestMustParse(t *testing.T) {
	if got := MustParse("has(a)").String(); got != "has(a)" {
		t.Errorf("MustParse(has(a)) = %q", got)
	}
	defer func() {
		r := recover()
		if _, ok := r.(*SyntaxError); !ok {
			t.Errorf("MustParse of an invalid selector panicked with %v, want *SyntaxError", r)
		}
	}()
	MustParse("has(")
}

func TestValidate(t *testing.T) {
	if err := Validate("has(a) && b in {'c'}"); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if err := Validate(""); err != nil {
		t.Errorf("Validate(\"\"): %v", err)
	}
}

func TestConcurrentEvaluate(t *testing.T) {
	sel := MustParse("role == 'worker' && (zone in {'us-east-1a'} || global())")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if !sel.Evaluate(worker) || sel.String() == "" {
					t.Error("inconsistent result")
					return
				}
			}
		})
	}
	wg.Wait()
}

const benchSelector = "role == 'worker' && zone in {'us-east-1a', 'us-east-1b', 'us-east-1c'} && !has(tainted) && rack starts with 'r1'"

func benchLabels() map[string]string {
	m := map[string]string{}
	for k, v := range worker {
		m[k] = v
	}
	for i := len(m); i < 10; i++ {
		m[fmt.Sprintf("example.com/extra-%d", i)] = "v"
	}
	return m
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	m := benchLabels()
	for _, s := range []string{benchSelector, "global() || a not in {'x'} || b ends with 'y' || !has(c)"} {
		sel := MustParse(s)
		if n := testing.AllocsPerRun(100, func() { sel.Evaluate(m) }); n != 0 {
			t.Errorf("Evaluate of %q allocates %v times per call", s, n)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	sel := MustParse(benchSelector)
	m := benchLabels()
	if len(m) != 10 || !sel.Evaluate(m) {
		b.Fatalf("benchmark setup: %d labels, match=%v", len(m), sel.Evaluate(m))
	}
	b.ReportAllocs()
	for b.Loop() {
		sel.Evaluate(m)
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(benchSelector); err != nil {
			b.Fatal(err)
		}
	}
}
