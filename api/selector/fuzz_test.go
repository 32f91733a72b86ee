package selector

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks the properties every caller relies on: Parse never
// panics, errors are well-formed *SyntaxErrors, and the canonical form is a
// fixed point that behaves exactly like the original.
func FuzzParse(f *testing.F) {
	for _, tc := range evalCases {
		f.Add(tc.sel)
	}
	for _, tc := range stringCases {
		f.Add(tc.in)
	}
	for _, tc := range errorCases {
		f.Add(tc.sel)
	}
	f.Fuzz(func(t *testing.T, in string) {
		sel, err := Parse(in)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) error %T is not a *SyntaxError", in, err)
			}
			if se.Selector != in || se.Offset < 0 || se.Offset > len(in) || se.Msg == "" {
				t.Fatalf("Parse(%q) malformed error: %+v", in, se)
			}
			if strings.Contains(se.Msg, "syntax error") {
				t.Fatalf("Parse(%q) unhelpful error: %s", in, se.Msg)
			}
			return
		}
		canon := sel.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q does not re-parse: %v", in, canon, err)
		}
		if again.String() != canon {
			t.Fatalf("canonical form of %q is not a fixed point: %q -> %q", in, canon, again.String())
		}
		for _, m := range fuzzLabelMaps(in) {
			if a, b := sel.Evaluate(m), again.Evaluate(m); a != b {
				t.Fatalf("Parse(%q) and its canonical form %q disagree on %v: %v vs %v", in, canon, m, a, b)
			}
		}
	})
}

// fuzzLabelMaps builds label maps from the words and quoted strings of the
// input, so that the keys and values the selector talks about are actually
// present and comparisons go both ways.
func fuzzLabelMaps(in string) []map[string]string {
	var words, values []string
	for i := 0; i < len(in); {
		c := in[i]
		switch {
		case isWordChar(c):
			j := i
			for j < len(in) && isWordChar(in[j]) {
				j++
			}
			words = append(words, in[i:j])
			i = j
		case c == '\'' || c == '"':
			j := strings.IndexByte(in[i+1:], c)
			if j < 0 {
				i = len(in)
				continue
			}
			values = append(values, in[i+1:i+1+j])
			i += j + 2
		default:
			i++
		}
	}
	if len(values) == 0 {
		values = []string{""}
	}
	maps := []map[string]string{nil, {namespaceLabel: "ns"}}
	for variant := range 5 {
		m := map[string]string{}
		for i, w := range words {
			v := values[(i+variant)%len(values)]
			switch variant {
			case 3:
				v = "x" + v + "x"
			case 4:
				v = w
			}
			m[w] = v
		}
		maps = append(maps, m)
	}
	return maps
}
