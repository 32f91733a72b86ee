package v3

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func pool(name, cidr string, disabled bool) *IPPool {
	p := &IPPool{Spec: IPPoolSpec{CIDR: cidr, Disabled: disabled}}
	p.Name = name
	return p
}

func TestValidatePoolOverlap(t *testing.T) {
	existing := []*IPPool{
		pool("v4-a", "10.0.0.0/16", false),
		pool("v4-old", "172.16.0.0/12", true),
		pool("v6-a", "fd00:1::/48", false),
		pool("broken", "not-a-cidr", false),
	}
	cases := []struct {
		name string
		p    *IPPool
		want []string // substrings; none means no error
	}{
		{"v4 inside existing", pool("new", "10.0.1.0/24", false), []string{`IPPool "new": spec.cidr: 10.0.1.0/24 overlaps 10.0.0.0/16 of IPPool "v4-a"`}},
		{"v4 containing existing", pool("new", "10.0.0.0/8", false), []string{`10.0.0.0/8 overlaps 10.0.0.0/16 of IPPool "v4-a"`}},
		{"v4 adjacent", pool("new", "10.1.0.0/16", false), nil},
		{"v6 overlap", pool("new", "fd00:1:0:1::/64", false), []string{`fd00:1:0:1::/64 overlaps fd00:1::/48 of IPPool "v6-a"`}},
		{"v6 disjoint", pool("new", "fd00:2::/48", false), nil},
		{"v4 default route", pool("new", "0.0.0.0/0", false), []string{`0.0.0.0/0 overlaps 10.0.0.0/16 of IPPool "v4-a"`}},
		{"disabled existing ignored", pool("new", "172.16.0.0/16", false), nil},
		{"same name is the one replaced", pool("v4-a", "10.0.0.0/15", false), nil},
		{"disabled new pool not checked", pool("new", "10.0.0.0/16", true), nil},
		{"v6 default route", pool("new", "::/0", false), []string{`::/0 overlaps fd00:1::/48 of IPPool "v6-a"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidatePoolOverlap(tc.p, existing)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want an overlap error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// A default route overlaps only pools of its own family.
	if err := ValidatePoolOverlap(pool("new", "0.0.0.0/0", false), existing); err == nil || strings.Contains(err.Error(), "v6-a") {
		t.Errorf("0.0.0.0/0: got %v, want v4-a only", err)
	}
	if err := ValidatePoolOverlap(pool("new", "::/0", false), existing); err == nil || strings.Contains(err.Error(), "v4-a") {
		t.Errorf("::/0: got %v, want v6-a only", err)
	}
	two := append(existing, pool("v4-b", "10.2.0.0/16", false))
	err := ValidatePoolOverlap(pool("new", "10.0.0.0/8", false), two)
	if err == nil || !strings.Contains(err.Error(), `"v4-a"`) || !strings.Contains(err.Error(), `"v4-b"`) {
		t.Errorf("got %v, want both v4-a and v4-b named", err)
	}
}

// The IPAM records are internal kinds: DecodeAll refuses them, but they are
// stored as YAML/JSON and validated like the rest.
func TestIPAMRecords(t *testing.T) {
	blockYAML := `apiVersion: projectcalico.org/v3
kind: IPAMBlock
metadata:
  name: 10-0-1-0-30
spec:
  affinity: host:node1
  allocations:
  - 0
  - null
  - 0
  - null
  attributes:
  - handle_id: k8s-pod-network.abc
    secondary:
      namespace: default
      node: node1
      pod: web-0
  cidr: 10.0.1.0/30
  sequenceNumber: 3
  strictAffinity: false
  unallocated:
  - 3
  - 1
`
	var b IPAMBlock
	if err := yaml.UnmarshalStrict([]byte(blockYAML), &b); err != nil {
		t.Fatal(err)
	}
	if err := Validate(&b); err != nil {
		t.Fatalf("valid block refused: %v", err)
	}
	if got := string(mustEncodeYAML(t, &b)); got != blockYAML {
		t.Errorf("block re-encodes as\n%s\nwant\n%s", got, blockYAML)
	}
	b.Spec.Unallocated = append(b.Spec.Unallocated, 0, 9)
	b.Spec.Allocations = b.Spec.Allocations[:3]
	err := Validate(&b)
	for _, want := range []string{
		`spec.allocations: has 3 entries, the block has 4 addresses`,
		`spec.unallocated[2]: ordinal 0 is listed as free but is allocated`,
		`spec.unallocated[3]: ordinal 9 is out of range 0-3`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}

	aff := &BlockAffinity{Spec: BlockAffinitySpec{State: AffinityStateConfirmed, Node: "node1", Type: "host", CIDR: "10.0.1.0/26"}}
	aff.Name = "node1-10-0-1-0-26"
	if err := Validate(aff); err != nil {
		t.Errorf("valid affinity refused: %v", err)
	}
	aff.Spec.State, aff.Spec.CIDR = "claimed", "10.0.1.1/26"
	err = Validate(aff)
	for _, want := range []string{`spec.state: "claimed" is not one of pending, confirmed, pendingDeletion`, `spec.cidr: "10.0.1.1/26" is not a network address`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}

	h := &IPAMHandle{Spec: IPAMHandleSpec{HandleID: "k8s-pod-network.abc", Block: map[string]int{"10.0.1.0/26": 1}}}
	h.Name = "k8s-pod-network.abc"
	if err := Validate(h); err != nil {
		t.Errorf("valid handle refused: %v", err)
	}
	h.Spec.Block["10.0.1.0/33"] = -1
	h.Name = "has/slash"
	err = Validate(h)
	for _, want := range []string{`metadata.name: "has/slash" is not a valid name`, `spec.block["10.0.1.0/33"]: "10.0.1.0/33" is not a valid CIDR`, `count -1 must not be negative`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
}

func TestDefaultsOnlyFillGaps(t *testing.T) {
	r, err := Decode([]byte(manifest("IPPool", "p", "cidr: 10.0.0.0/8\nblockSize: 24\nipipMode: Always\nnodeSelector: a == 'b'\nallowedUses: [Tunnel]\nassignmentMode: Manual")))
	if err != nil {
		t.Fatal(err)
	}
	before := string(mustEncodeYAML(t, r))
	SetDefaults(r)
	// Only vxlanMode is missing, so only it may be added.
	want := strings.Replace(before, "  nodeSelector: a == 'b'\n", "  nodeSelector: a == 'b'\n  vxlanMode: Never\n", 1)
	if after := string(mustEncodeYAML(t, r)); after != want {
		t.Errorf("defaults changed set fields:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	node := &BGPConfiguration{Spec: BGPConfigurationSpec{LogSeverityScreen: "Debug"}}
	node.Name = "node.n1"
	SetDefaults(node)
	if node.Spec.ASNumber != nil || node.Spec.NodeToNodeMeshEnabled != nil || node.Spec.ListenPort != 0 || node.Spec.LogSeverityScreen != "Debug" {
		t.Errorf("per-node BGPConfiguration got defaults: %+v", node.Spec)
	}

	for _, tc := range []struct {
		ingress, egress int
		want            []PolicyType
	}{{0, 0, []PolicyType{PolicyTypeIngress}}, {1, 0, []PolicyType{PolicyTypeIngress}}, {0, 1, []PolicyType{PolicyTypeEgress}}, {2, 1, []PolicyType{PolicyTypeIngress, PolicyTypeEgress}}} {
		np := &NetworkPolicy{Spec: NetworkPolicySpec{Ingress: make([]Rule, tc.ingress), Egress: make([]Rule, tc.egress)}}
		SetDefaults(np)
		if np.Spec.Tier != "default" || len(np.Spec.Types) != len(tc.want) || np.Spec.Types[0] != tc.want[0] || np.Spec.Types[len(tc.want)-1] != tc.want[len(tc.want)-1] {
			t.Errorf("ingress %d egress %d: tier %q types %v, want default %v", tc.ingress, tc.egress, np.Spec.Tier, np.Spec.Types, tc.want)
		}
	}
	gnp := &GlobalNetworkPolicy{Spec: GlobalNetworkPolicySpec{Tier: "security", Types: []PolicyType{PolicyTypeEgress}, Ingress: make([]Rule, 1)}}
	SetDefaults(gnp)
	if gnp.Spec.Tier != "security" || len(gnp.Spec.Types) != 1 || gnp.Spec.Types[0] != PolicyTypeEgress {
		t.Errorf("GNP defaults overrode tier/types: %+v", gnp.Spec)
	}
}
