package v3

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// DecodeError says which document of a multi-document input failed and why.
type DecodeError struct {
	Index int // 0-based position of the document in the input (after List expansion: of the List document)
	Err   error
}

func (e *DecodeError) Error() string { return fmt.Sprintf("document %d: %v", e.Index+1, e.Err) }
func (e *DecodeError) Unwrap() error { return e.Err }

// Document is one decoded resource and the position of the YAML/JSON
// document it came from (documents inside a List share the List's index).
type Document struct {
	Index    int
	Resource Resource
}

// DecodeAll decodes every document of a YAML or JSON stream: `---`-separated
// YAML, concatenated JSON objects, and `kind: List` / `kind: <Kind>List`
// documents with `items`. Decoding is strict: an unknown kind, a wrong
// apiVersion, an unknown or duplicate field or a wrongly typed value is an
// error naming the document, the resource and the field's path (a
// *SchemaError inside the *DecodeError for field problems). It returns the
// documents decoded before the first failing document together with that
// error. It neither defaults nor validates: see SetDefaults and Validate.
func DecodeAll(data []byte) ([]Document, error) {
	if docs, err, ok := decodeJSONStream(data); ok {
		return docs, err
	}
	var out []Document
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for idx := 0; ; {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, &DecodeError{Index: idx, Err: err}
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		rs, err := decodeDocument(raw)
		if err != nil {
			return out, &DecodeError{Index: idx, Err: err}
		}
		for _, r := range rs {
			out = append(out, Document{Index: idx, Resource: r})
		}
		idx++
	}
}

// decodeJSONStream handles input that is one or more concatenated JSON
// objects. ok is false when the input is not JSON (YAML, possibly in flow
// style), so the caller reads it as YAML.
func decodeJSONStream(data []byte) (docs []Document, err error, ok bool) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	for idx := 0; ; idx++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return docs, nil, true
			}
			if idx == 0 {
				return nil, nil, false
			}
			return docs, &DecodeError{Index: idx, Err: fmt.Errorf("invalid JSON: %w", err)}, true
		}
		rs, err := decodeDocument(raw)
		if err != nil {
			return docs, &DecodeError{Index: idx, Err: err}, true
		}
		for _, r := range rs {
			docs = append(docs, Document{Index: idx, Resource: r})
		}
	}
}

// Decode decodes exactly one resource.
func Decode(data []byte) (Resource, error) {
	docs, err := DecodeAll(data)
	if err != nil {
		return nil, err
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("expected exactly one resource, found %d", len(docs))
	}
	return docs[0].Resource, nil
}

func stripComments(b []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] == '#' {
			continue
		}
		out = append(out, line)
	}
	return bytes.Join(out, []byte("\n"))
}

// yamlError puts the YAML library's multi-line messages ("unmarshal
// errors:\n  line 7: key \"cidr\" already set in map") on one line.
type yamlError struct{ err error }

func (e yamlError) Error() string {
	return "invalid YAML: " + strings.Join(strings.Fields(strings.ReplaceAll(e.err.Error(), ":\n", ": ")), " ")
}
func (e yamlError) Unwrap() error { return e.err }

// listFields are the top-level fields of a List document.
var listFields = map[string]bool{"apiVersion": true, "kind": true, "items": true, "metadata": true}

func decodeDocument(raw []byte) ([]Resource, error) {
	js, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return nil, yamlError{err}
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid document: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("a resource must be a YAML mapping or JSON object with apiVersion, kind, metadata and spec, got %s", describeJSON(v))
	}
	apiVersion, kind, err := typeOf(obj)
	if err != nil {
		return nil, err
	}
	if kind == "List" || (strings.HasSuffix(kind, "List") && isKind(strings.TrimSuffix(kind, "List"))) {
		if apiVersion != APIVersion && apiVersion != "v1" {
			return nil, fmt.Errorf("apiVersion: %q is not supported for %s, use %q", apiVersion, kind, APIVersion)
		}
		var errs []FieldError
		for _, k := range sortedKeys(obj) {
			if !listFields[k] {
				errs = append(errs, FieldError{Field: k, Reason: ReasonUnknownField})
			}
		}
		if md, ok := obj["metadata"]; ok {
			w := &schemaWalker{}
			w.walk("metadata", md, reflect.TypeFor[metav1.ListMeta]())
			errs = append(errs, w.errs...)
		}
		items, ok := obj["items"].([]any)
		if !ok && obj["items"] != nil {
			errs = append(errs, FieldError{Field: "items", Reason: "expected a list, got " + describeJSON(obj["items"])})
		}
		if len(errs) > 0 {
			return nil, &SchemaError{Kind: kind, Errors: errs}
		}
		itemKind := strings.TrimSuffix(kind, "List")
		var out []Resource
		for i, item := range items {
			itemObj, ok := item.(map[string]any)
			if !ok {
				return out, fmt.Errorf("items[%d]: expected an object, got %s", i, describeJSON(item))
			}
			if k, _ := itemObj["kind"].(string); itemKind != "" && k != itemKind && k != "" {
				return out, fmt.Errorf("items[%d]: kind: %q does not belong in kind %s", i, k, kind)
			}
			r, err := decodeObject(itemObj)
			if err != nil {
				return out, fmt.Errorf("items[%d]: %w", i, err)
			}
			out = append(out, r)
		}
		return out, nil
	}
	r, err := decodeObject(obj)
	if err != nil {
		return nil, err
	}
	return []Resource{r}, nil
}

// typeOf reads apiVersion and kind, which must be strings when present.
func typeOf(obj map[string]any) (apiVersion, kind string, err error) {
	for _, f := range []struct {
		name string
		dst  *string
	}{{"apiVersion", &apiVersion}, {"kind", &kind}} {
		v, present := obj[f.name]
		if !present || v == nil {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return "", "", fmt.Errorf("%s: expected a string, got %s", f.name, describeJSON(v))
		}
		*f.dst = s
	}
	if kind == "" {
		return "", "", fmt.Errorf("kind: missing")
	}
	return apiVersion, kind, nil
}

func isKind(k string) bool { _, ok := kinds[k]; return ok }

func decodeObject(obj map[string]any) (Resource, error) {
	apiVersion, kind, err := typeOf(obj)
	if err != nil {
		return nil, err
	}
	if apiVersion != APIVersion {
		if apiVersion == "" {
			return nil, fmt.Errorf("apiVersion: missing, use %q", APIVersion)
		}
		return nil, fmt.Errorf("apiVersion: %q is not supported, use %q", apiVersion, APIVersion)
	}
	k, ok := kinds[kind]
	if !ok || k.Internal {
		if alt, found := LookupKind(kind); found && !alt.Internal {
			return nil, fmt.Errorf("kind: %q is not a known resource kind (did you mean %q?)", kind, alt.Kind)
		}
		return nil, fmt.Errorf("kind: %q is not a known resource kind", kind)
	}
	r := k.New()
	if errs := checkSchema(obj, reflect.TypeOf(r).Elem()); len(errs) > 0 {
		ns, name := metaNames(obj)
		return nil, &SchemaError{Kind: k.Kind, Namespace: ns, Name: name, Errors: errs}
	}
	js, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("re-encode %s: %w", k.Kind, err)
	}
	if err := strictUnmarshal(js, r); err != nil {
		// checkSchema accepts only what decodes; reaching here is a bug in
		// it, reported rather than hidden.
		ns, name := metaNames(obj)
		return nil, fmt.Errorf("%s: %w", describeName(k.Kind, ns, name), err)
	}
	setTypeMeta(r, k.Kind)
	return r, nil
}

// metaNames reads metadata.namespace and metadata.name from an undecoded
// object, for error messages.
func metaNames(obj map[string]any) (namespace, name string) {
	md, _ := obj["metadata"].(map[string]any)
	namespace, _ = md["namespace"].(string)
	name, _ = md["name"].(string)
	return namespace, name
}

// strictUnmarshal decodes js into r, rejecting unknown fields.
func strictUnmarshal(js []byte, r Resource) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	return dec.Decode(r)
}

// EncodeYAML renders resources as calicoctl does: one resource as a document,
// several as a `kind: <Kind>List` (or `List` when kinds are mixed). Keys are
// sorted, as sigs.k8s.io/yaml (and so calicoctl) sorts them. A zero
// creationTimestamp is omitted (apimachinery tags it omitzero), as is a
// Node's empty status.
func EncodeYAML(rs []Resource) ([]byte, error) {
	v, err := encodable(rs)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(v)
}

// EncodeJSON is EncodeYAML's JSON twin, indented, with fields in Go struct
// order as calicoctl prints them.
func EncodeJSON(rs []Resource) ([]byte, error) {
	v, err := encodable(rs)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func encodable(rs []Resource) (any, error) {
	for _, r := range rs {
		if r == nil || reflect.ValueOf(r).IsNil() {
			return nil, fmt.Errorf("encode: nil resource")
		}
		setTypeMeta(r, KindOf(r))
	}
	if len(rs) == 1 {
		return rs[0], nil
	}
	kind := "List"
	if len(rs) > 0 {
		k := KindOf(rs[0])
		same := true
		for _, r := range rs {
			same = same && KindOf(r) == k
		}
		if same {
			kind = k + "List"
		}
	}
	items := rs
	if items == nil {
		items = []Resource{}
	}
	return struct {
		APIVersion string     `json:"apiVersion"`
		Kind       string     `json:"kind"`
		Items      []Resource `json:"items"`
		Metadata   struct {
			ResourceVersion string `json:"resourceVersion,omitempty"`
		} `json:"metadata"`
	}{APIVersion: APIVersion, Kind: kind, Items: items}, nil
}
