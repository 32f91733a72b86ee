package etcd

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	v3 "github.com/tabbynet/tabby/api/v3"
)

// KeyPrefix is the root of every resource key, as in Calico's etcdv3 backend.
const KeyPrefix = "/calico/resources/v3/projectcalico.org/"

// lookupKind resolves a Kind name.
func lookupKind(kind string) (v3.KindInfo, error) {
	if kind == "" {
		return v3.KindInfo{}, errors.New("resource kind is empty")
	}
	ki, ok := v3.KindByName(kind)
	if !ok {
		return v3.KindInfo{}, fmt.Errorf("unknown resource kind %q", kind)
	}
	return ki, nil
}

// checkSegment refuses values that would break the key layout: a "/" would
// move the resource into another namespace's key space or hide it from List.
func checkSegment(what, v string) error {
	if v == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if strings.Contains(v, "/") {
		return fmt.Errorf("%s %q contains '/'", what, v)
	}
	return nil
}

// ResourcePath returns the etcd key of a resource; it checks that namespaced
// kinds have a namespace, that cluster-scoped kinds have none and that the
// name is set.
func ResourcePath(key v3.Key) (string, error) {
	ki, err := lookupKind(key.Kind)
	if err != nil {
		return "", err
	}
	if err := checkSegment("metadata.name", key.Name); err != nil {
		return "", err
	}
	if ki.Namespaced {
		if key.Namespace == "" {
			return "", fmt.Errorf("%s is namespaced: metadata.namespace is required", ki.Kind)
		}
		if err := checkSegment("metadata.namespace", key.Namespace); err != nil {
			return "", err
		}
		return KeyPrefix + ki.Plural + "/" + key.Namespace + "/" + key.Name, nil
	}
	if key.Namespace != "" {
		return "", fmt.Errorf("%s is cluster-scoped: metadata.namespace must be empty, not %q", ki.Kind, key.Namespace)
	}
	return KeyPrefix + ki.Plural + "/" + key.Name, nil
}

// listPrefix returns the key prefix covering a kind, or one namespace of a
// namespaced kind.
func listPrefix(kind, namespace string) (v3.KindInfo, string, error) {
	ki, err := lookupKind(kind)
	if err != nil {
		return ki, "", err
	}
	p := KeyPrefix + ki.Plural + "/"
	if namespace == "" {
		return ki, p, nil
	}
	if !ki.Namespaced {
		return ki, "", fmt.Errorf("%s is cluster-scoped: namespace must be empty, not %q", ki.Kind, namespace)
	}
	if err := checkSegment("namespace", namespace); err != nil {
		return ki, "", err
	}
	return ki, p + namespace + "/", nil
}

// keyFromPath is ResourcePath's inverse; ok is false for keys under the kind's
// prefix that this layout never writes.
func keyFromPath(ki v3.KindInfo, path string) (key v3.Key, ok bool) {
	rest, found := strings.CutPrefix(path, KeyPrefix+ki.Plural+"/")
	if !found {
		return v3.Key{}, false
	}
	parts := strings.Split(rest, "/")
	switch {
	case ki.Namespaced && len(parts) == 2 && parts[0] != "" && parts[1] != "":
		return v3.Key{Kind: ki.Kind, Namespace: parts[0], Name: parts[1]}, true
	case !ki.Namespaced && len(parts) == 1 && parts[0] != "":
		return v3.Key{Kind: ki.Kind, Name: parts[0]}, true
	}
	return v3.Key{}, false
}

func gvk(kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: v3.Group, Version: "v3", Kind: kind}
}

// encode renders the stored form of r (which the caller owns): the full
// resource with apiVersion and kind, without resourceVersion, which etcd keeps.
func encode(ki v3.KindInfo, r v3.Resource) ([]byte, error) {
	r.GetObjectKind().SetGroupVersionKind(gvk(ki.Kind))
	r.SetResourceVersion("")
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", v3.Describe(r), err)
	}
	return b, nil
}

// decode turns a stored value back into a resource. Unknown fields are
// accepted (a newer writer may have added some); the name, namespace and kind
// come from the key, which is the authority on identity.
func decode(ki v3.KindInfo, path string, value []byte, modRevision int64) (v3.Resource, error) {
	key, ok := keyFromPath(ki, path)
	if !ok {
		return nil, fmt.Errorf("key %s is not a %s key", path, ki.Kind)
	}
	r := ki.New()
	if err := json.Unmarshal(value, r); err != nil {
		return nil, fmt.Errorf("decode the value stored at %s: %w", path, err)
	}
	r.GetObjectKind().SetGroupVersionKind(gvk(ki.Kind))
	r.SetName(key.Name)
	r.SetNamespace(key.Namespace)
	r.SetResourceVersion(formatRev(modRevision))
	return r, nil
}

// stub is what is known of a resource whose value is missing or unreadable:
// its identity only.
func stub(ki v3.KindInfo, key v3.Key, modRevision int64) v3.Resource {
	r := ki.New()
	r.SetName(key.Name)
	r.SetNamespace(key.Namespace)
	if modRevision > 0 {
		r.SetResourceVersion(formatRev(modRevision))
	}
	return r
}

func formatRev(rev int64) string { return strconv.FormatInt(rev, 10) }

func parseRev(rv string) (int64, error) {
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("resourceVersion %q is not an etcd revision (a positive decimal number)", rv)
	}
	return n, nil
}
