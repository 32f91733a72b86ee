package resourcemgr

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
)

func TestApplyPatch(t *testing.T) {
	base := &v3.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p1", ResourceVersion: "7", Labels: map[string]string{"a": "1"}},
		Spec: v3.IPPoolSpec{CIDR: "10.1.0.0/16", IPIPMode: v3.EncapAlways, NATOutgoing: true, BlockSize: 26}}

	t.Run("merge JSON", func(t *testing.T) {
		out, err := ApplyPatch(base, `{"spec":{"natOutgoing":false,"ipipMode":"Never","vxlanMode":"Always"},"metadata":{"labels":{"a":null,"b":"2"}}}`, PatchMerge)
		if err != nil {
			t.Fatal(err)
		}
		p := out.(*v3.IPPool)
		if p.Spec.NATOutgoing || p.Spec.IPIPMode != v3.EncapNever || p.Spec.VXLANMode != v3.EncapAlways || p.Spec.CIDR != "10.1.0.0/16" || p.Spec.BlockSize != 26 {
			t.Errorf("patched spec %+v", p.Spec)
		}
		if len(p.Labels) != 1 || p.Labels["b"] != "2" {
			t.Errorf("labels %v, want only b=2", p.Labels)
		}
		if base.Spec.IPIPMode != v3.EncapAlways || base.Labels["a"] != "1" {
			t.Error("ApplyPatch modified its input")
		}
	})
	t.Run("YAML and default type", func(t *testing.T) {
		out, err := ApplyPatch(base, "spec:\n  disabled: true\n", "")
		if err != nil {
			t.Fatal(err)
		}
		if !out.(*v3.IPPool).Spec.Disabled {
			t.Error("disabled not set")
		}
	})
	t.Run("RFC 6902", func(t *testing.T) {
		out, err := ApplyPatch(base, `[{"op":"replace","path":"/spec/blockSize","value":28}]`, PatchJSON)
		if err != nil {
			t.Fatal(err)
		}
		if out.(*v3.IPPool).Spec.BlockSize != 28 {
			t.Error("blockSize not replaced")
		}
	})
	for _, tc := range []struct{ name, patch, typ, want string }{
		{"unknown field", `{"spec":{"bogus":1}}`, PatchMerge, `unknown field "spec.bogus"`},
		{"wrong type", `{"spec":{"natOutgoing":"yes"}}`, PatchMerge, "natOutgoing"},
		{"rename", `{"metadata":{"name":"p2"}}`, PatchMerge, "cannot change metadata.name"},
		{"not an object", `[1,2]`, PatchMerge, "must be a JSON/YAML object"},
		{"bad syntax", `{"spec":`, PatchMerge, "neither JSON nor YAML"},
		{"bad op", `[{"op":"replace","path":"/spec/nothere/x","value":1}]`, PatchJSON, "apply JSON patch"},
		{"unknown type", `{}`, "xml", "unknown patch type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ApplyPatch(base, tc.patch, tc.typ)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
