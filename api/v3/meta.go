package v3

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and APIVersion of every resource in this package.
const (
	Group      = "projectcalico.org"
	APIVersion = Group + "/v3"
)

// Resource is what every kind in this package implements: Kubernetes-style
// type and object metadata, so the same values can later be stored as CRDs.
type Resource interface {
	metav1.Object
	GetObjectKind() schema.ObjectKind
}

// KindInfo describes one resource kind.
type KindInfo struct {
	Kind       string   // e.g. "IPPool"
	Plural     string   // lower-case plural used in datastore keys, e.g. "ippools"
	Namespaced bool     // namespaced kinds need metadata.namespace
	Internal   bool     // internal records (IPAM) that calicoctl does not create/apply
	Aliases    []string // extra lower-case names calicoctl accepts, e.g. "pool"
	new        func() Resource
}

// New returns an empty resource of this kind with its TypeMeta set.
func (k KindInfo) New() Resource {
	r := k.new()
	setTypeMeta(r, k.Kind)
	return r
}

var (
	kinds       = map[string]KindInfo{}
	kindsByType = map[reflect.Type]string{}
)

func register(k KindInfo) {
	if _, dup := kinds[k.Kind]; dup {
		panic("duplicate kind " + k.Kind)
	}
	kinds[k.Kind] = k
	kindsByType[reflect.TypeOf(k.new())] = k.Kind
}

// Kinds lists every registered kind, sorted by name.
func Kinds() []KindInfo {
	out := make([]KindInfo, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

// KindByName returns the kind with exactly this Kind name ("IPPool").
func KindByName(kind string) (KindInfo, bool) {
	k, ok := kinds[kind]
	return k, ok
}

// LookupKind resolves what a user types on calicoctl's command line:
// the kind in any case ("ippool", "IPPool"), its plural ("ippools") or an alias.
func LookupKind(name string) (KindInfo, bool) {
	n := strings.ToLower(name)
	for _, k := range kinds {
		if strings.ToLower(k.Kind) == n || k.Plural == n {
			return k, true
		}
		for _, a := range k.Aliases {
			if a == n {
				return k, true
			}
		}
	}
	return KindInfo{}, false
}

// NewResource returns an empty resource of the named kind.
func NewResource(kind string) (Resource, error) {
	k, ok := kinds[kind]
	if !ok {
		return nil, fmt.Errorf("unknown resource kind %q", kind)
	}
	return k.New(), nil
}

// KindOf returns the Kind name of r, from its Go type (not from its possibly
// empty TypeMeta).
func KindOf(r Resource) string {
	if k, ok := kindsByType[reflect.TypeOf(r)]; ok {
		return k
	}
	return r.GetObjectKind().GroupVersionKind().Kind
}

func setTypeMeta(r Resource, kind string) {
	r.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Group: Group, Version: "v3", Kind: kind})
}

// Clone returns a deep copy of r through its JSON form. Resources are small;
// a generated DeepCopy would add a code generator for no measurable gain.
func Clone[T Resource](r T) T {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("clone %T: %v", r, err))
	}
	out, err := NewResource(KindOf(r))
	if err != nil {
		panic(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		panic(fmt.Sprintf("clone %T: %v", r, err))
	}
	return out.(T)
}

// Key identifies one resource in a datastore.
type Key struct {
	Kind      string
	Namespace string // empty for cluster-scoped kinds
	Name      string
}

func (k Key) String() string {
	if k.Namespace != "" {
		return fmt.Sprintf("%s(%s/%s)", k.Kind, k.Namespace, k.Name)
	}
	return fmt.Sprintf("%s(%s)", k.Kind, k.Name)
}

// KeyOf returns the key of r.
func KeyOf(r Resource) Key {
	return Key{Kind: KindOf(r), Namespace: r.GetNamespace(), Name: r.GetName()}
}

// Describe names a resource the way errors and calicoctl messages do:
// `IPPool "p1"` or `WorkloadEndpoint "ns1/wep1"`.
func Describe(r Resource) string {
	if r.GetNamespace() != "" {
		return fmt.Sprintf("%s %q", KindOf(r), r.GetNamespace()+"/"+r.GetName())
	}
	return fmt.Sprintf("%s %q", KindOf(r), r.GetName())
}
