package commands_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// pool renders an IPPool document.
func pool(name, spec string) string {
	return hdr + "kind: IPPool\nmetadata:\n  name: " + name + "\nspec:\n" + spec
}

func peerDoc(name, spec string) string {
	return hdr + "kind: BGPPeer\nmetadata:\n  name: " + name + "\nspec:\n" + spec
}

// badCase is one input that must fail, name its cause and write nothing.
type badCase struct {
	name  string
	files map[string]string // written to the harness directory; "$name" in args is replaced by the path
	stdin string
	env   map[string]string // overrides of the harness environment
	args  []string
	want  []string // substrings of stderr
}

func TestBadInputsWriteNothing(t *testing.T) {
	h := newHarness(t)
	// What the datastore holds while the bad inputs are tried.
	h.ok("create", "-f", h.file("seed.yaml", pool("existing", "  cidr: 10.10.0.0/16\n")+"---\n"+
		peerDoc("peer1", "  peerIP: 192.0.2.1\n  asNumber: 65001\n")+"---\n"+
		hdr+"kind: Node\nmetadata:\n  name: node1\n  labels:\n    rack: r1\nspec:\n  bgp:\n    ipv4Address: 192.0.2.10/24\n"))
	stale := "1" // the seed was written at a later revision

	valid := pool("fresh", "  cidr: 10.30.0.0/16\n")
	cases := []badCase{
		{name: "malformed YAML", files: map[string]string{"f.yaml": hdr + "kind: IPPool\nmetadata: {name: p\nspec:\n  cidr: 10.0.0.0/16\n"},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"f.yaml: document 1", "invalid YAML"}},
		{name: "wrong apiVersion", files: map[string]string{"f.yaml": strings.Replace(valid, "/v3", "/v2", 1)},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"f.yaml: document 1", `apiVersion: "projectcalico.org/v2" is not supported`}},
		{name: "unknown kind", files: map[string]string{"f.yaml": strings.Replace(valid, "kind: IPPool", "kind: IPPoool", 1)},
			args: []string{"apply", "-f", "$f.yaml"}, want: []string{"document 1", `"IPPoool" is not a known resource kind`}},
		{name: "unknown field", files: map[string]string{"f.yaml": pool("p", "  cidr: 10.0.0.0/16\n  natOutgoin: true\n")},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"document 1", `unknown field "spec.natOutgoin"`}},
		{name: "bad CIDR", files: map[string]string{"f.yaml": pool("p", "  cidr: 10.0.0.0/33\n")},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"f.yaml: document 1", `IPPool "p": spec.cidr: "10.0.0.0/33" is not a valid CIDR`}},
		{name: "unmasked CIDR", files: map[string]string{"f.yaml": pool("p", "  cidr: 10.0.0.1/16\n")},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"spec.cidr", "not a network address", "10.0.0.0/16"}},
		{name: "blockSize out of range", files: map[string]string{"f.yaml": pool("p", "  cidr: 10.0.0.0/16\n  blockSize: 33\n")},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"spec.blockSize", "33 is out of range"}},
		{name: "pool smaller than a block", files: map[string]string{"f.yaml": pool("p", "  cidr: 10.0.0.0/28\n")},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"spec.cidr", "smaller than one block"}},
		{name: "ipip and vxlan together", files: map[string]string{"f.yaml": pool("p", "  cidr: 10.0.0.0/16\n  ipipMode: Always\n  vxlanMode: Always\n")},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"spec.vxlanMode", "cannot be combined with ipipMode"}},
		{name: "ipip on IPv6", files: map[string]string{"f.yaml": pool("p", "  cidr: fd00:10::/48\n  ipipMode: Always\n")},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"spec.ipipMode", "IPIP is IPv4 only"}},
		{name: "bad ipipMode value", files: map[string]string{"f.yaml": pool("p", "  cidr: 10.0.0.0/16\n  ipipMode: Sometimes\n")},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"spec.ipipMode", `"Sometimes" is not one of`}},
		{name: "overlaps a stored pool", files: map[string]string{"f.yaml": pool("p", "  cidr: 10.10.128.0/17\n")},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"f.yaml: document 1", `overlaps 10.10.0.0/16 of IPPool "existing"`}},
		{name: "overlap within one file", files: map[string]string{"f.yaml": pool("a", "  cidr: 10.20.0.0/16\n") + "---\n" + pool("b", "  cidr: 10.20.64.0/18\n")},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"f.yaml: document 2", `overlaps 10.20.0.0/16 of IPPool "a"`}},
		{name: "bad AS number", files: map[string]string{"f.yaml": peerDoc("p", "  peerIP: 192.0.2.9\n  asNumber: 4294967296\n")},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"document 1", "not a valid AS number"}},
		{name: "bad asdot AS number", files: map[string]string{"f.yaml": hdr + "kind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  asNumber: \"1.70000\"\n"},
			args: []string{"apply", "-f", "$f.yaml"}, want: []string{"document 1", "not a valid AS number"}},
		{name: "peerIP with a bad port", files: map[string]string{"f.yaml": peerDoc("p", "  peerIP: 192.0.2.9:0\n  asNumber: 65001\n")},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"spec.peerIP", "the port must be 1-65535"}},
		{name: "peer with node and nodeSelector", files: map[string]string{"f.yaml": peerDoc("p", "  peerIP: 192.0.2.9\n  asNumber: 65001\n  node: node1\n  nodeSelector: all()\n")},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"spec.nodeSelector", "cannot be combined with node"}},
		{name: "bad selector syntax", files: map[string]string{"f.yaml": pool("p", "  cidr: 10.40.0.0/16\n  nodeSelector: has(rack\n")},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"spec.nodeSelector"}},
		{name: "bad resource name", files: map[string]string{"f.yaml": pool("Bad_Name", "  cidr: 10.40.0.0/16\n")},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"metadata.name", `"Bad_Name" is not a valid name`}},
		{name: "bad namespace name", files: map[string]string{"f.yaml": hdr + "kind: NetworkSet\nmetadata:\n  name: s\n  namespace: Bad_NS\nspec:\n  nets: [10.0.0.0/8]\n"},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"metadata.namespace", `"Bad_NS" is not a valid namespace`}},
		{name: "namespace on a cluster-scoped kind", files: map[string]string{"f.yaml": strings.Replace(valid, "name: fresh", "name: fresh\n  namespace: prod", 1)},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"document 1", "namespace should not be specified", "IPPool is not a namespaced resource"}},
		{name: "namespace differs from --namespace", files: map[string]string{"f.yaml": hdr + "kind: NetworkSet\nmetadata:\n  name: s\n  namespace: prod\nspec:\n  nets: [10.0.0.0/8]\n"},
			args: []string{"create", "-f", "$f.yaml", "-n", "dev"}, want: []string{"does not match client namespace. prod != dev"}},
		{name: "stale resourceVersion on replace", files: map[string]string{"f.yaml": strings.Replace(pool("existing", "  cidr: 10.10.0.0/16\n  natOutgoing: true\n"), "name: existing", "name: existing\n  resourceVersion: \""+stale+"\"", 1)},
			args: []string{"replace", "-f", "$f.yaml"}, want: []string{"document 1", "the resource was modified", "re-read it"}},
		{name: "stale resourceVersion on apply", files: map[string]string{"f.yaml": strings.Replace(pool("existing", "  cidr: 10.10.0.0/16\n  natOutgoing: true\n"), "name: existing", "name: existing\n  resourceVersion: \""+stale+"\"", 1)},
			args: []string{"apply", "-f", "$f.yaml"}, want: []string{"the resource was modified", "re-read it"}},
		{name: "replace of a missing resource", files: map[string]string{"f.yaml": valid},
			args: []string{"replace", "-f", "$f.yaml"}, want: []string{"failed to replace 'IPPool' resource", "IPPool(fresh): resource does not exist"}},
		{name: "delete of a missing resource", args: []string{"delete", "ippool", "nothere"},
			want: []string{"IPPool(nothere): resource does not exist"}},
		{name: "delete of two where the second is missing", files: map[string]string{"f.yaml": pool("existing", "  cidr: 10.10.0.0/16\n") + "---\n" + pool("nothere", "  cidr: 10.50.0.0/16\n")},
			args: []string{"delete", "-f", "$f.yaml"}, want: []string{"f.yaml: document 2", "IPPool(nothere): resource does not exist", "nothing was written"}},
		{name: "create of an existing resource", files: map[string]string{"f.yaml": pool("existing", "  cidr: 10.10.0.0/16\n")},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"IPPool(existing): resource already exists"}},
		{name: "third of three documents invalid", files: map[string]string{"f.yaml": valid + "---\n" + pool("second", "  cidr: 10.31.0.0/16\n") + "---\n" + pool("third", "  cidr: 10.32.0.0/16\n  blockSize: 12\n")},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"failed to create any 'IPPool' resources", "nothing was written", "f.yaml: document 3", "spec.blockSize"}},
		{name: "bad file in a directory", files: map[string]string{"dir/a.yaml": valid, "dir/b.yaml": pool("b", "  cidr: 10.60.0.0/16\n  ipipMode: Never\n  vxlanMode: Sometimes\n")},
			args: []string{"apply", "-f", "$dir"}, want: []string{"b.yaml: document 1", "spec.vxlanMode"}},
		{name: "same resource twice in one file", files: map[string]string{"f.yaml": valid + "---\n" + valid},
			args: []string{"apply", "-f", "$f.yaml"}, want: []string{"document 2", `IPPool "fresh" is also given in`}},
		{name: "internal kind in a file", files: map[string]string{"f.yaml": hdr + "kind: IPAMBlock\nmetadata:\n  name: 10-0-0-0-26\nspec:\n  cidr: 10.0.0.0/26\n"},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"document 1", `"IPAMBlock" is not a known resource kind`}},
		{name: "internal kind by name", args: []string{"delete", "ipamblocks", "10-0-0-0-26"},
			want: []string{"resource type 'ipamblocks' is not supported", "internal IPAM record"}},
		{name: "unknown kind on the command line", args: []string{"delete", "ippoolz", "x"},
			want: []string{"resource type 'ippoolz' is not supported"}},
		{name: "IPPool CIDR change", files: map[string]string{"f.yaml": pool("existing", "  cidr: 10.11.0.0/16\n")},
			args: []string{"apply", "-f", "$f.yaml"}, want: []string{"spec.cidr", "IPPool CIDR cannot be modified"}},
		{name: "patch adding an unknown field", args: []string{"patch", "ippool", "existing", "-p", `{"spec":{"natOutgoin":true}}`},
			want: []string{"failed to patch 'IPPool' resource", `unknown field "spec.natOutgoin"`}},
		{name: "patch making a pool invalid", args: []string{"patch", "ippool", "existing", "-p", `{"spec":{"ipipMode":"Always","vxlanMode":"Always"}}`},
			want: []string{"failed to patch 'IPPool' resource", "spec.vxlanMode"}},
		{name: "patch of a missing resource", args: []string{"patch", "bgppeer", "nothere", "-p", `{"spec":{"asNumber":65009}}`},
			want: []string{"BGPPeer(nothere): resource does not exist"}},
		{name: "label changing a key without --overwrite", args: []string{"label", "nodes", "node1", "rack=r2"},
			want: []string{"key rack is already present", "--overwrite"}},
		{name: "label removing a missing key", args: []string{"label", "nodes", "node1", "zone", "--remove"},
			want: []string{"key zone does not exist"}},
		{name: "label with an invalid value", args: []string{"label", "nodes", "node1", "zone=bad value!"},
			want: []string{"metadata.labels", "not a valid label value"}},
		{name: "unreachable datastore", files: map[string]string{"f.yaml": valid},
			env:  map[string]string{"ETCD_ENDPOINTS": fmt.Sprintf("http://127.0.0.1:%d", closedPort(t))},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"failed to create 'IPPool' resource", "datastore unavailable"}},
		{name: "bad datastore type", files: map[string]string{"f.yaml": valid}, env: map[string]string{"DATASTORE_TYPE": "consul"},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{`datastore type "consul" is not known`}},
		{name: "stdin with an invalid second document", stdin: valid + "---\n" + pool("x", "  cidr: 10.70.0.0/16\n  ipipMode: Always\n  blockSize: 2\n"),
			args: []string{"create", "-f", "-"}, want: []string{"stdin: document 2", "spec.blockSize"}},
		{name: "empty file", files: map[string]string{"f.yaml": "# nothing here\n"},
			args: []string{"create", "-f", "$f.yaml"}, want: []string{"no resources specified in file"}},
	}
	if len(cases) < 30 {
		t.Fatalf("only %d bad inputs", len(cases))
	}
	placeholder := regexp.MustCompile(`^\$(.+)$`)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			for name, content := range tc.files {
				h.file(tc.name+"/"+name, content)
			}
			args := make([]string, len(tc.args))
			for i, a := range tc.args {
				if m := placeholder.FindStringSubmatch(a); m != nil {
					a = h.dir + "/" + tc.name + "/" + m[1]
				}
				args[i] = a
			}
			saved := map[string]string{}
			for k, v := range tc.env {
				saved[k] = h.env[k]
				h.env[k] = v
			}
			defer func() {
				for k, v := range saved {
					h.env[k] = v
				}
			}()

			before := h.snapshot()
			r := h.run(tc.stdin, args...)
			after := h.snapshot()

			if r.err == nil {
				t.Fatalf("calicoctl %s succeeded:\n%s", strings.Join(tc.args, " "), r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r)
				}
			}
			if r.stdout != "" {
				t.Errorf("a refused command printed to stdout:\n%s", r)
			}
			if before != after {
				t.Errorf("the datastore changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}
