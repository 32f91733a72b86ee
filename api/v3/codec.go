package v3

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

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
// error naming the document and the field. It returns the documents decoded
// before the first error together with that error.
func DecodeAll(data []byte) ([]Document, error) {
	var out []Document
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for idx := 0; ; idx++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, &DecodeError{Index: idx, Err: err}
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			idx--
			continue
		}
		rs, err := decodeDocument(raw)
		if err != nil {
			return out, &DecodeError{Index: idx, Err: err}
		}
		for _, r := range rs {
			out = append(out, Document{Index: idx, Resource: r})
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

type typeHeader struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"`
}

func decodeDocument(raw []byte) ([]Resource, error) {
	js, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if !bytes.HasPrefix(bytes.TrimSpace(js), []byte("{")) {
		return nil, fmt.Errorf("a resource must be a YAML mapping or JSON object with apiVersion, kind, metadata and spec")
	}
	var h typeHeader
	if err := json.Unmarshal(js, &h); err != nil {
		return nil, fmt.Errorf("invalid resource header: %w", err)
	}
	if h.Kind == "" {
		return nil, fmt.Errorf("kind: missing")
	}
	if h.Kind == "List" || (strings.HasSuffix(h.Kind, "List") && isKind(strings.TrimSuffix(h.Kind, "List"))) {
		if h.APIVersion != APIVersion && h.APIVersion != "v1" {
			return nil, fmt.Errorf("apiVersion: %q is not supported for %s, use %q", h.APIVersion, h.Kind, APIVersion)
		}
		var out []Resource
		for i, item := range h.Items {
			r, err := decodeObject(item)
			if err != nil {
				return out, fmt.Errorf("items[%d]: %w", i, err)
			}
			out = append(out, r)
		}
		return out, nil
	}
	r, err := decodeObject(js)
	if err != nil {
		return nil, err
	}
	return []Resource{r}, nil
}

func isKind(k string) bool { _, ok := kinds[k]; return ok }

func decodeObject(js []byte) (Resource, error) {
	var h typeHeader
	if err := json.Unmarshal(js, &h); err != nil {
		return nil, fmt.Errorf("invalid resource header: %w", err)
	}
	if h.APIVersion != APIVersion {
		if h.APIVersion == "" {
			return nil, fmt.Errorf("apiVersion: missing, use %q", APIVersion)
		}
		return nil, fmt.Errorf("apiVersion: %q is not supported, use %q", h.APIVersion, APIVersion)
	}
	k, ok := kinds[h.Kind]
	if !ok || k.Internal {
		return nil, fmt.Errorf("kind: %q is not a known resource kind", h.Kind)
	}
	r := k.New()
	if err := strictUnmarshal(js, r); err != nil {
		return nil, err
	}
	setTypeMeta(r, k.Kind)
	return r, nil
}

// strictUnmarshal decodes js into r, rejecting unknown fields.
func strictUnmarshal(js []byte, r Resource) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		return err
	}
	return nil
}

// EncodeYAML renders resources as calicoctl does: one resource as a document,
// several as a `kind: <Kind>List` (or `List` when kinds are mixed).
func EncodeYAML(rs []Resource) ([]byte, error) {
	v, err := encodable(rs)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(v)
}

// EncodeJSON is EncodeYAML's JSON twin, indented.
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
