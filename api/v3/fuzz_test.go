package v3

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeAll feeds arbitrary bytes through what calicoctl does with a
// file: decode, default, validate, encode. Nothing may panic, and whatever
// decodes must encode to something that decodes again to the same output.
func FuzzDecodeAll(f *testing.F) {
	ins, _ := filepath.Glob("testdata/golden/*.in.yaml")
	for _, in := range ins {
		if b, err := os.ReadFile(in); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"", "---", "{", "[]", "null", "- a", "kind: List\napiVersion: v1\nitems: [1, {kind: IPPool}]",
		`{"apiVersion":"projectcalico.org/v3","kind":"BGPPeer","metadata":{"name":"x"},"spec":{"asNumber":"1.10","peerIP":"[::1]:1"}}{}`,
		manifest("NetworkPolicy", "x", "ingress:\n- action: Allow\n  protocol: 1\n  icmp: {type: 1, code: 2}\n  source:\n    ports: ['1:2', http]"),
		manifest("IPPool", "x", "cidr: ::/0\nblockSize: 128"),
		manifest("FelixConfiguration", "default", "routeTableRanges: [{min: 1, max: 4294967295}]\nkubeNodePortRanges: ['1:2']"),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, _ := DecodeAll(data)
		for _, d := range docs {
			SetDefaults(d.Resource)
			_ = Validate(d.Resource)
			out, err := EncodeYAML([]Resource{d.Resource})
			if err != nil {
				t.Fatalf("encode decoded %s: %v", KindOf(d.Resource), err)
			}
			if _, err := EncodeJSON([]Resource{d.Resource}); err != nil {
				t.Fatalf("encode JSON: %v", err)
			}
			back, err := Decode(out)
			if err != nil {
				t.Fatalf("own output does not decode: %v\n%s", err, out)
			}
			SetDefaults(back)
			again, err := EncodeYAML([]Resource{back})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, again) {
				t.Fatalf("round trip changed the resource:\n%s\n---\n%s", out, again)
			}
		}
	})
}
