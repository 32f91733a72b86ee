package resourcemgr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	v3 "github.com/tabbynet/tabby/api/v3"
)

// Patch types accepted by `calicoctl patch --type`.
const (
	// PatchStrategic is Calico's default name. The v3 types carry no
	// strategic-merge annotations, so for them a strategic merge patch is
	// exactly a JSON merge patch (maps merge, lists are replaced); it is
	// applied as one.
	PatchStrategic = "strategic"
	PatchMerge     = "merge" // RFC 7386 JSON merge patch
	PatchJSON      = "json"  // RFC 6902 JSON patch (a list of operations)
)

// ApplyPatch returns a copy of r with patch applied. The patch may be JSON or
// YAML. The result is decoded strictly, so a patch that adds an unknown field
// or a wrongly typed value fails here, naming the field; one that renames the
// resource or changes its kind is refused. r itself is not modified.
func ApplyPatch(r v3.Resource, patch string, patchType string) (v3.Resource, error) {
	kind := v3.KindOf(r)
	patchJSON, err := yaml.YAMLToJSON([]byte(patch))
	if err != nil {
		return nil, fmt.Errorf("patch is neither JSON nor YAML: %w", err)
	}
	orig := v3.Clone(r)
	orig.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Group: v3.Group, Version: "v3", Kind: kind})
	origJSON, err := json.Marshal(orig)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", v3.Describe(r), err)
	}

	var patched []byte
	switch patchType {
	case "", PatchStrategic, PatchMerge:
		if !bytes.HasPrefix(bytes.TrimSpace(patchJSON), []byte("{")) {
			return nil, fmt.Errorf("a %s patch must be a JSON/YAML object, e.g. '{\"spec\":{\"natOutgoing\":true}}'", patchTypeName(patchType))
		}
		patched, err = jsonpatch.MergePatch(origJSON, patchJSON)
		if err != nil {
			return nil, fmt.Errorf("apply merge patch: %w", err)
		}
	case PatchJSON:
		ops, err := jsonpatch.DecodePatch(patchJSON)
		if err != nil {
			return nil, fmt.Errorf("decode JSON patch (RFC 6902, a list of operations): %w", err)
		}
		patched, err = ops.Apply(origJSON)
		if err != nil {
			return nil, fmt.Errorf("apply JSON patch: %w", err)
		}
	default:
		return nil, fmt.Errorf("unknown patch type %q: use strategic, merge or json", patchType)
	}

	out, err := v3.Decode(patched)
	if err != nil {
		// The patched resource is one document; its number says nothing.
		var de *v3.DecodeError
		if errors.As(err, &de) {
			err = de.Err
		}
		return nil, fmt.Errorf("the patched resource is not valid: %w", err)
	}
	switch {
	case v3.KindOf(out) != kind:
		return nil, fmt.Errorf("a patch cannot change the kind of %s", v3.Describe(r))
	case out.GetName() != r.GetName():
		return nil, fmt.Errorf("a patch cannot change metadata.name of %s", v3.Describe(r))
	case out.GetNamespace() != r.GetNamespace():
		return nil, fmt.Errorf("a patch cannot change metadata.namespace of %s", v3.Describe(r))
	}
	return out, nil
}

func patchTypeName(t string) string {
	if t == "" {
		return PatchStrategic
	}
	return t
}
