package v3

import (
	"strings"
	"testing"
)

func TestDecodeStreams(t *testing.T) {
	pools := manifest("IPPool", "a", "cidr: 10.0.0.0/16") + "---\n" + manifest("IPPool", "b", "cidr: 10.1.0.0/16")
	cases := []struct {
		name      string
		src       string
		wantNames []string
		wantIdx   []int
	}{
		{"yaml documents", pools, []string{"a", "b"}, []int{0, 1}},
		{"leading separator and comments", "# pools\n---\n" + pools + "---\n", []string{"a", "b"}, []int{0, 1}},
		{"json stream",
			`{"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"a"},"spec":{"cidr":"10.0.0.0/16"}}
			 {"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"b"},"spec":{"cidr":"10.1.0.0/16"}}`,
			[]string{"a", "b"}, []int{0, 1}},
		{"flow-style yaml", "{apiVersion: projectcalico.org/v3, kind: IPPool, metadata: {name: a}, spec: {cidr: 10.0.0.0/16}}\n", []string{"a"}, []int{0}},
		{"typed list", "apiVersion: projectcalico.org/v3\nkind: IPPoolList\nmetadata:\n  resourceVersion: \"12\"\nitems:\n" +
			indentItem(manifest("IPPool", "a", "cidr: 10.0.0.0/16")) + indentItem(manifest("IPPool", "b", "cidr: 10.1.0.0/16")) +
			"---\n" + manifest("BGPPeer", "c", "peerSelector: all()"), []string{"a", "b", "c"}, []int{0, 0, 1}},
		{"v1 list of mixed kinds", "apiVersion: v1\nkind: List\nitems:\n" + indentItem(manifest("IPPool", "a", "cidr: 10.0.0.0/16")) +
			indentItem(manifest("BGPPeer", "b", "peerSelector: all()")), []string{"a", "b"}, []int{0, 0}},
		{"empty list", "apiVersion: v1\nkind: List\nitems: []\n", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := DecodeAll([]byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if len(docs) != len(tc.wantNames) {
				t.Fatalf("got %d documents, want %d", len(docs), len(tc.wantNames))
			}
			for i, d := range docs {
				if d.Resource.GetName() != tc.wantNames[i] || d.Index != tc.wantIdx[i] {
					t.Errorf("document %d: %s at index %d, want %s at %d", i, d.Resource.GetName(), d.Index, tc.wantNames[i], tc.wantIdx[i])
				}
				if d.Resource.GetObjectKind().GroupVersionKind().Kind != KindOf(d.Resource) {
					t.Errorf("document %d: TypeMeta kind not set", i)
				}
			}
		})
	}
}

// indentItem turns a manifest into a list item.
func indentItem(m string) string {
	lines := strings.Split(strings.TrimRight(m, "\n"), "\n")
	for i := range lines {
		if i == 0 {
			lines[i] = "- " + lines[i]
		} else {
			lines[i] = "  " + lines[i]
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestEncodeShape(t *testing.T) {
	a, err := Decode([]byte(manifest("IPPool", "a", "cidr: 10.0.0.0/16")))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Decode([]byte(manifest("IPPool", "b", "cidr: 10.1.0.0/16")))
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{}
	n.Name = "n1"

	got := string(mustEncodeYAML(t, a, b))
	want := `apiVersion: projectcalico.org/v3
items:
- apiVersion: projectcalico.org/v3
  kind: IPPool
  metadata:
    name: a
  spec:
    cidr: 10.0.0.0/16
- apiVersion: projectcalico.org/v3
  kind: IPPool
  metadata:
    name: b
  spec:
    cidr: 10.1.0.0/16
kind: IPPoolList
metadata: {}
`
	if got != want {
		t.Errorf("list:\n%s\nwant:\n%s", got, want)
	}
	if got := string(mustEncodeYAML(t, a, n)); !strings.Contains(got, "\nkind: List\n") {
		t.Errorf("mixed kinds not a List:\n%s", got)
	}
	// A Node without status has no status key; no creationTimestamp: null.
	if got, want := string(mustEncodeYAML(t, n)), "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n1\nspec: {}\n"; got != want {
		t.Errorf("empty node:\n%s\nwant:\n%s", got, want)
	}
	n.Status.PodCIDRs = []string{}
	if got := string(mustEncodeYAML(t, n)); strings.Contains(got, "status") {
		t.Errorf("empty status list shown:\n%s", got)
	}
	n.Status.PodCIDRs = []string{"10.0.0.0/24"}
	if got := string(mustEncodeYAML(t, n)); !strings.Contains(got, "status:\n  podCIDRs:\n  - 10.0.0.0/24\n") {
		t.Errorf("status not shown:\n%s", got)
	}
	js, err := EncodeJSON([]Resource{a})
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{
  "kind": "IPPool",
  "apiVersion": "projectcalico.org/v3",
  "metadata": {
    "name": "a"
  },
  "spec": {
    "cidr": "10.0.0.0/16"
  }
}
`
	if string(js) != wantJSON {
		t.Errorf("json:\n%s\nwant:\n%s", js, wantJSON)
	}
	if _, err := EncodeYAML([]Resource{(*IPPool)(nil)}); err == nil {
		t.Error("nil resource encoded")
	}
}

// A pool exported from a recent Calico carries status conditions; it must
// load and keep them.
func TestIPPoolStatusRoundTrip(t *testing.T) {
	src := manifest("IPPool", "p", "cidr: 10.0.0.0/16") + `status:
  conditions:
  - lastTransitionTime: "2025-01-02T03:04:05Z"
    message: IPPool is available for IP allocation.
    reason: OK
    status: "True"
    type: Allocatable
`
	r, err := Decode([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(mustEncodeYAML(t, r)); got != src {
		t.Errorf("got\n%s\nwant\n%s", got, src)
	}
}
