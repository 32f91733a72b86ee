package v3

import (
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReasonUnknownField is the Reason of a FieldError for a field the kind does
// not have.
const ReasonUnknownField = "unknown field"

// SchemaError lists the fields of one decoded object that do not fit its
// kind's Go type: unknown fields and wrongly typed values, each with its path
// from the object's root.
type SchemaError struct {
	Kind      string
	Namespace string
	Name      string
	Errors    []FieldError
}

// Error reads `IPPool "p1": unknown field "spec.cidrr"; spec.blockSize:
// expected a number, got string "abc"`.
func (e *SchemaError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		if strings.HasPrefix(fe.Reason, ReasonUnknownField) {
			parts[i] = fmt.Sprintf("unknown field %q%s", fe.Field, strings.TrimPrefix(fe.Reason, ReasonUnknownField))
		} else {
			parts[i] = fe.Error()
		}
	}
	return describeName(e.Kind, e.Namespace, e.Name) + ": " + strings.Join(parts, "; ")
}

func describeName(kind, namespace, name string) string {
	switch {
	case name == "" && namespace == "":
		return kind
	case namespace != "":
		return fmt.Sprintf("%s %q", kind, namespace+"/"+name)
	default:
		return fmt.Sprintf("%s %q", kind, name)
	}
}

// checkSchema walks a decoded JSON value (from a json.Decoder with UseNumber)
// against the Go type t the way encoding/json would decode it, but strictly:
// field names match case-sensitively and every problem is reported with its
// path. It knows nothing about particular kinds, only about Go types, json
// tags and the custom scalar types that implement json.Unmarshaler.
func checkSchema(v any, t reflect.Type) []FieldError {
	w := &schemaWalker{}
	w.walk("", v, t)
	return w.errs
}

type schemaWalker struct{ errs []FieldError }

func (w *schemaWalker) fail(path, format string, args ...any) {
	if path == "" {
		path = "(root)"
	}
	w.errs = append(w.errs, FieldError{Field: path, Reason: fmt.Sprintf(format, args...)})
}

func (w *schemaWalker) wrongType(path, want string, v any) {
	w.fail(path, "expected %s, got %s", want, describeJSON(v))
}

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	durationType        = reflect.TypeFor[metav1.Duration]()
	timeType            = reflect.TypeFor[metav1.Time]()
	microTimeType       = reflect.TypeFor[metav1.MicroTime]()
)

func (w *schemaWalker) walk(path string, v any, t reflect.Type) {
	if v == nil {
		// null leaves the Go value at its zero value (or nil), as
		// encoding/json does; the custom types here treat it the same way.
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case durationType:
		s, ok := v.(string)
		if !ok {
			w.wrongType(path, `a duration string like "90s"`, v)
			return
		}
		if _, err := time.ParseDuration(s); err != nil {
			w.fail(path, "%q is not a duration: use a form like \"90s\" or \"1m30s\"", s)
		}
		return
	case timeType, microTimeType:
		s, ok := v.(string)
		if !ok {
			w.wrongType(path, "an RFC 3339 time string", v)
			return
		}
		layout := time.RFC3339
		if t == microTimeType {
			layout = metav1.RFC3339Micro
		}
		if _, err := time.Parse(layout, s); err != nil {
			w.fail(path, "%q is not an RFC 3339 time like \"2006-01-02T15:04:05Z\"", s)
		}
		return
	}
	if reflect.PointerTo(t).Implements(jsonUnmarshalerType) {
		raw, err := json.Marshal(v)
		if err != nil {
			w.fail(path, "cannot re-encode value: %v", err)
			return
		}
		target := reflect.New(t).Interface().(json.Unmarshaler)
		if err := target.UnmarshalJSON(raw); err != nil {
			w.fail(path, "%s", cleanJSONError(err))
		}
		return
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		s, ok := v.(string)
		if !ok {
			w.wrongType(path, "a string", v)
			return
		}
		if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			w.fail(path, "%q: %v", s, err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Interface:
		return // anything goes
	case reflect.String:
		switch v.(type) {
		case string:
		case json.Number, bool:
			// YAML reads unquoted 1.10, 0755 or yes as numbers and booleans,
			// often not as written; refusing beats guessing the text.
			w.fail(path, "expected a string, got %s (quote it to keep it as text)", describeJSON(v))
		default:
			w.wrongType(path, "a string", v)
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			w.wrongType(path, "true or false", v)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			w.wrongType(path, "a number", v)
			return
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil && !isIntegerLiteral(n.String()) {
			w.fail(path, "expected an integer, got number %s", n)
			return
		}
		bits := t.Bits()
		lo, hi := int64(-1)<<(bits-1), int64(1)<<(bits-1)-1
		if err != nil || i < lo || i > hi {
			w.fail(path, "%s is out of range %d to %d", n, lo, hi)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, ok := v.(json.Number)
		if !ok {
			w.wrongType(path, "a number", v)
			return
		}
		u, err := strconv.ParseUint(n.String(), 10, 64)
		if err != nil && !isIntegerLiteral(n.String()) {
			w.fail(path, "expected an integer, got number %s", n)
			return
		}
		hi := uint64(math.MaxUint64) >> (64 - t.Bits())
		if err != nil || u > hi {
			w.fail(path, "%s is out of range 0 to %d", n, hi)
		}
	case reflect.Float32, reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			w.wrongType(path, "a number", v)
			return
		}
		if _, err := strconv.ParseFloat(n.String(), t.Bits()); err != nil {
			w.fail(path, "%s is out of range for a number", n)
		}
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			if _, ok := v.(string); !ok {
				w.wrongType(path, "a base64 string", v)
			}
			return
		}
		arr, ok := v.([]any)
		if !ok {
			w.wrongType(path, "a list", v)
			return
		}
		if t.Kind() == reflect.Array && len(arr) > t.Len() {
			w.fail(path, "has %d items, at most %d allowed", len(arr), t.Len())
		}
		for i, e := range arr {
			w.walk(fmt.Sprintf("%s[%d]", path, i), e, t.Elem())
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			w.wrongType(path, "a map", v)
			return
		}
		for _, k := range sortedKeys(obj) {
			w.walk(joinKey(path, k), obj[k], t.Elem())
		}
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			w.wrongType(path, "an object", v)
			return
		}
		fields := structFields(t)
		for _, k := range sortedKeys(obj) {
			ft, ok := fields.byName[k]
			if !ok {
				w.errs = append(w.errs, FieldError{Field: joinPath(path, k), Reason: ReasonUnknownField + fields.suggest(path, k)})
				continue
			}
			w.walk(joinPath(path, k), obj[k], ft)
		}
	default:
		w.fail(path, "cannot be decoded into a Go %s", t.Kind())
	}
}

// isIntegerLiteral reports whether a JSON number is written as a whole number
// (possibly too large for int64), as opposed to 1.5 or 1e3.
func isIntegerLiteral(s string) bool {
	s = strings.TrimPrefix(s, "-")
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// cleanJSONError drops encoding/json's "json: " prefix and Go type names from
// errors returned by UnmarshalJSON methods.
func cleanJSONError(err error) string {
	if ute, ok := err.(*json.UnmarshalTypeError); ok {
		return fmt.Sprintf("expected a %s, got %s", ute.Type.Kind(), ute.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func describeJSON(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return fmt.Sprintf("boolean %t", x)
	case json.Number:
		return "number " + x.String()
	case string:
		if len(x) > 64 {
			x = x[:61] + "..."
		}
		return "string " + strconv.Quote(x)
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// joinKey appends a map key: `.key` when it reads as an identifier, else
// `["key"]` so that keys holding dots or slashes stay unambiguous.
func joinKey(path, key string) string {
	plain := key != ""
	for _, r := range key {
		if !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			plain = false
			break
		}
	}
	if plain {
		return joinPath(path, key)
	}
	return path + "[" + strconv.Quote(key) + "]"
}

type fieldSet struct {
	byName map[string]reflect.Type
	names  []string
}

var fieldCache sync.Map // reflect.Type -> *fieldSet

// structFields returns the JSON field names of t as encoding/json sees them:
// json tag names (or the Go name when the tag has none), with the fields of
// embedded structs without a tag name promoted; shallower fields win.
func structFields(t reflect.Type) *fieldSet {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.(*fieldSet)
	}
	fs := &fieldSet{byName: map[string]reflect.Type{}}
	collectFields(t, fs, 0)
	for n := range fs.byName {
		fs.names = append(fs.names, n)
	}
	sort.Strings(fs.names)
	fieldCache.Store(t, fs)
	return fs
}

func collectFields(t reflect.Type, fs *fieldSet, depth int) {
	if depth > 8 {
		return
	}
	var embedded []reflect.Type
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if sf.Anonymous && name == "" {
			ft := sf.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		if _, dup := fs.byName[name]; !dup {
			fs.byName[name] = sf.Type
		}
	}
	for _, et := range embedded {
		collectFields(et, fs, depth+1)
	}
}

// suggest names the known field closest to an unknown one, when one is close
// enough to be a likely typo: same letters in another case, or an edit
// distance of at most 2.
func (fs *fieldSet) suggest(path, unknown string) string {
	best, bestDist := "", 3
	for _, n := range fs.names {
		if strings.EqualFold(n, unknown) {
			best, bestDist = n, 0
			break
		}
		if d := editDistance(strings.ToLower(n), strings.ToLower(unknown), bestDist); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best == "" || len(unknown) < 3 {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", joinPath(path, best))
}

// editDistance is the Levenshtein distance of a and b, or limit when it is at
// least limit.
func editDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}
