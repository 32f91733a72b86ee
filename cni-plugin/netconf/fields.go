package netconf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// fields reads typed values out of one JSON object, remembering the first
// problem of each key so that Parse can report every wrong key at once, each
// named by its full dotted path ("ipam.assign_ipv4"). Keys nobody asks for
// are never looked at: unknown keys are ignored, as CNI plugins do.
type fields struct {
	path string // "" for the top level, "ipam." for the ipam section
	m    map[string]json.RawMessage
	errs *[]string
}

func newFields(raw []byte) (*fields, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("netconf is JSON null, not an object")
	}
	return &fields{m: m, errs: new([]string)}, nil
}

// raw returns the key's value, or nil when it is absent or JSON null (null
// means "not set", as encoding/json treats it).
func (f *fields) raw(key string) json.RawMessage {
	v, ok := f.m[key]
	if !ok {
		return nil
	}
	v = bytes.TrimSpace(v)
	if string(v) == "null" {
		return nil
	}
	return v
}

func (f *fields) has(key string) bool { return f.raw(key) != nil }

func (f *fields) fail(key, format string, args ...any) {
	*f.errs = append(*f.errs, fmt.Sprintf("%q: %s", f.path+key, fmt.Sprintf(format, args...)))
}

func (f *fields) wrongType(key, want string, v json.RawMessage) {
	f.fail(key, "expected %s, got %s", want, describe(v))
}

// str reads a string key into dst, leaving dst alone when the key is absent.
func (f *fields) str(key string, dst *string) bool {
	v := f.raw(key)
	if v == nil {
		return false
	}
	var s string
	if v[0] != '"' || json.Unmarshal(v, &s) != nil {
		f.wrongType(key, "a string", v)
		return false
	}
	*dst = s
	return true
}

// integer reads a whole number key into dst.
func (f *fields) integer(key string, dst *int) bool {
	v := f.raw(key)
	if v == nil {
		return false
	}
	if !isNumber(v) {
		f.wrongType(key, "a number", v)
		return false
	}
	n, err := strconv.ParseFloat(string(v), 64)
	if err != nil || n != math.Trunc(n) || math.Abs(n) > math.MaxInt32 {
		f.fail(key, "expected a whole number, got %s", string(v))
		return false
	}
	*dst = int(n)
	return true
}

// boolean reads a JSON boolean key into dst.
func (f *fields) boolean(key string, dst *bool) bool {
	v := f.raw(key)
	if v == nil {
		return false
	}
	switch string(v) {
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		f.wrongType(key, "a boolean", v)
		return false
	}
	return true
}

// boolOrString reads a key that Calico declares as a string holding "true"
// or "false" (ipam.assign_ipv4); a JSON boolean is accepted too, because that
// is what people write.
func (f *fields) boolOrString(key string, dst *bool) bool {
	v := f.raw(key)
	if v == nil {
		return false
	}
	if string(v) == "true" || string(v) == "false" {
		*dst = string(v) == "true"
		return true
	}
	var s string
	if v[0] != '"' || json.Unmarshal(v, &s) != nil {
		f.wrongType(key, `a boolean or the string "true" or "false"`, v)
		return false
	}
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		f.fail(key, `expected "true" or "false", got string %q`, s)
		return false
	}
	*dst = b
	return true
}

// strList reads a list of strings into dst.
func (f *fields) strList(key string, dst *[]string) bool {
	v := f.raw(key)
	if v == nil {
		return false
	}
	var items []json.RawMessage
	if v[0] != '[' || json.Unmarshal(v, &items) != nil {
		f.wrongType(key, "a list of strings", v)
		return false
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		var s string
		it = bytes.TrimSpace(it)
		if len(it) == 0 || it[0] != '"' || json.Unmarshal(it, &s) != nil {
			f.fail(fmt.Sprintf("%s[%d]", key, i), "expected a string, got %s", describe(it))
			return false
		}
		out = append(out, s)
	}
	*dst = out
	return true
}

// object returns the fields of a nested object key, or nil when the key is
// absent or not an object (the latter is recorded as an error).
func (f *fields) object(key string) *fields {
	v := f.raw(key)
	if v == nil {
		return nil
	}
	var m map[string]json.RawMessage
	if v[0] != '{' || json.Unmarshal(v, &m) != nil {
		f.wrongType(key, "an object", v)
		return nil
	}
	return &fields{path: f.path + key + ".", m: m, errs: f.errs}
}

func isNumber(v json.RawMessage) bool {
	c := v[0]
	return c == '-' || (c >= '0' && c <= '9')
}

// describe names a JSON value for an error message: `string "abc"`,
// `number 3`, `boolean true`, `an object`, `a list`.
func describe(v json.RawMessage) string {
	if len(v) == 0 {
		return "nothing"
	}
	switch c := v[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(v, &s) == nil {
			if len(s) > 40 {
				s = s[:40] + "..."
			}
			return fmt.Sprintf("string %q", s)
		}
		return "a malformed string"
	case c == '{':
		return "an object"
	case c == '[':
		return "a list"
	case c == 't' || c == 'f':
		return "boolean " + string(v)
	case c == 'n':
		return "null"
	case isNumber(v):
		return "number " + string(v)
	}
	return "something that is not JSON"
}
