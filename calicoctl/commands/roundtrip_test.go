package commands_test

import (
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
)

// kindCase is one resource kind's round trip: create `before`, apply `after`.
type kindCase struct {
	kind, arg, name, namespace string
	before, after              string
}

const hdr = "apiVersion: projectcalico.org/v3\n"

var kindCases = []kindCase{
	{kind: "IPPool", arg: "ippool", name: "rt-pool",
		before: hdr + "kind: IPPool\nmetadata:\n  name: rt-pool\nspec:\n  cidr: 10.77.0.0/16\n  ipipMode: Always\n  natOutgoing: true\n",
		after:  hdr + "kind: IPPool\nmetadata:\n  name: rt-pool\n  labels:\n    zone: a\nspec:\n  cidr: 10.77.0.0/16\n  ipipMode: CrossSubnet\n  natOutgoing: false\n"},
	{kind: "BGPPeer", arg: "bgppeers", name: "rt-peer",
		before: hdr + "kind: BGPPeer\nmetadata:\n  name: rt-peer\nspec:\n  peerIP: 192.0.2.1\n  asNumber: 65001\n",
		after:  hdr + "kind: BGPPeer\nmetadata:\n  name: rt-peer\nspec:\n  peerIP: 192.0.2.1\n  asNumber: 65002\n  nodeSelector: rack == 'a'\n"},
	{kind: "BGPConfiguration", arg: "bgpconfig", name: "default",
		before: hdr + "kind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  logSeverityScreen: Info\n  nodeToNodeMeshEnabled: true\n  asNumber: 64512\n",
		after:  hdr + "kind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  logSeverityScreen: Warning\n  nodeToNodeMeshEnabled: false\n  asNumber: 65100\n"},
	{kind: "Node", arg: "node", name: "rt-node",
		before: hdr + "kind: Node\nmetadata:\n  name: rt-node\nspec:\n  bgp:\n    ipv4Address: 192.0.2.10/24\n",
		after:  hdr + "kind: Node\nmetadata:\n  name: rt-node\nspec:\n  bgp:\n    ipv4Address: 192.0.2.10/24\n    asNumber: 65010\n"},
	{kind: "FelixConfiguration", arg: "felixconfiguration", name: "default",
		before: hdr + "kind: FelixConfiguration\nmetadata:\n  name: default\nspec:\n  logSeverityScreen: Info\n  ipipEnabled: true\n",
		after:  hdr + "kind: FelixConfiguration\nmetadata:\n  name: default\nspec:\n  logSeverityScreen: Debug\n  ipipEnabled: false\n"},
	{kind: "WorkloadEndpoint", arg: "wep", name: "rt--node-k8s-web-eth0", namespace: "prod",
		before: hdr + "kind: WorkloadEndpoint\nmetadata:\n  name: rt--node-k8s-web-eth0\n  namespace: prod\nspec:\n  orchestrator: k8s\n  node: rt-node\n  pod: web\n  endpoint: eth0\n  interfaceName: cali0123456789a\n  ipNetworks:\n  - 10.77.1.5/32\n",
		after:  hdr + "kind: WorkloadEndpoint\nmetadata:\n  name: rt--node-k8s-web-eth0\n  namespace: prod\nspec:\n  orchestrator: k8s\n  node: rt-node\n  pod: web\n  endpoint: eth0\n  interfaceName: cali0123456789a\n  ipNetworks:\n  - 10.77.1.6/32\n"},
	{kind: "HostEndpoint", arg: "hep", name: "rt-hep",
		before: hdr + "kind: HostEndpoint\nmetadata:\n  name: rt-hep\nspec:\n  node: rt-node\n  interfaceName: eth0\n  expectedIPs:\n  - 192.0.2.10\n",
		after:  hdr + "kind: HostEndpoint\nmetadata:\n  name: rt-hep\nspec:\n  node: rt-node\n  interfaceName: eth1\n  expectedIPs:\n  - 192.0.2.11\n"},
	{kind: "NetworkPolicy", arg: "networkpolicy", name: "allow-web", namespace: "default",
		before: hdr + "kind: NetworkPolicy\nmetadata:\n  name: allow-web\nspec:\n  selector: app == 'web'\n  ingress:\n  - action: Allow\n    protocol: TCP\n    destination:\n      ports: [80]\n",
		after:  hdr + "kind: NetworkPolicy\nmetadata:\n  name: allow-web\nspec:\n  selector: app == 'web'\n  order: 100\n  ingress:\n  - action: Allow\n    protocol: TCP\n    destination:\n      ports: [80, 443]\n"},
	{kind: "GlobalNetworkPolicy", arg: "gnp", name: "deny-all",
		before: hdr + "kind: GlobalNetworkPolicy\nmetadata:\n  name: deny-all\nspec:\n  selector: all()\n  types: [Ingress]\n",
		after:  hdr + "kind: GlobalNetworkPolicy\nmetadata:\n  name: deny-all\nspec:\n  selector: all()\n  order: 2000\n  types: [Ingress, Egress]\n"},
	{kind: "NetworkSet", arg: "networksets", name: "partners", namespace: "prod",
		before: hdr + "kind: NetworkSet\nmetadata:\n  name: partners\n  namespace: prod\nspec:\n  nets:\n  - 198.51.100.0/24\n",
		after:  hdr + "kind: NetworkSet\nmetadata:\n  name: partners\n  namespace: prod\nspec:\n  nets:\n  - 198.51.100.0/24\n  - 203.0.113.0/24\n"},
	{kind: "GlobalNetworkSet", arg: "globalnetworkset", name: "blocked",
		before: hdr + "kind: GlobalNetworkSet\nmetadata:\n  name: blocked\nspec:\n  nets:\n  - 203.0.113.0/24\n",
		after:  hdr + "kind: GlobalNetworkSet\nmetadata:\n  name: blocked\n  labels:\n    role: blocked\nspec:\n  nets:\n  - 203.0.113.0/25\n"},
	{kind: "IPAMConfiguration", arg: "ipamconfig", name: "default",
		before: hdr + "kind: IPAMConfiguration\nmetadata:\n  name: default\nspec:\n  strictAffinity: false\n",
		after:  hdr + "kind: IPAMConfiguration\nmetadata:\n  name: default\nspec:\n  strictAffinity: true\n  maxBlocksPerHost: 4\n"},
}

func TestRoundTripEveryKind(t *testing.T) {
	h := newHarness(t)
	covered := map[string]bool{}
	for _, tc := range kindCases {
		covered[tc.kind] = true
		t.Run(tc.kind, func(t *testing.T) {
			h.t = t
			getArgs := []string{"get", tc.arg, tc.name, "-o", "yaml"}
			if tc.namespace != "" {
				getArgs = append(getArgs, "-n", tc.namespace)
			}

			r := h.ok("create", "-f", h.file(tc.kind+"-before.yaml", tc.before))
			if want := "Successfully created 1 '" + tc.kind + "' resource(s)\n"; r.stdout != want {
				t.Fatalf("create printed %q, want %q", r.stdout, want)
			}
			created := h.ok(getArgs...)
			assertStoredEquals(t, created.stdout, tc.before, tc.namespace)

			r = h.ok("apply", "-f", h.file(tc.kind+"-after.yaml", tc.after))
			if want := "Successfully applied 1 '" + tc.kind + "' resource(s)\n"; r.stdout != want {
				t.Fatalf("apply printed %q, want %q", r.stdout, want)
			}
			applied := h.ok(getArgs...)
			assertStoredEquals(t, applied.stdout, tc.after, tc.namespace)
			if applied.stdout == created.stdout {
				t.Fatal("get shows no change after apply")
			}
			// The uid and creation time survive the update; the version moves on.
			before, after := decodeOne(t, created.stdout), decodeOne(t, applied.stdout)
			if before.GetUID() == "" || before.GetUID() != after.GetUID() {
				t.Errorf("uid %q became %q", before.GetUID(), after.GetUID())
			}
			if before.GetResourceVersion() == after.GetResourceVersion() {
				t.Errorf("resourceVersion stayed %q", after.GetResourceVersion())
			}

			delArgs := []string{"delete", tc.arg, tc.name}
			if tc.namespace != "" {
				delArgs = append(delArgs, "-n", tc.namespace)
			}
			r = h.ok(delArgs...)
			if want := "Successfully deleted 1 '" + tc.kind + "' resource(s)\n"; r.stdout != want {
				t.Fatalf("delete printed %q, want %q", r.stdout, want)
			}
			r = h.run("", getArgs...)
			if r.err == nil || !strings.Contains(r.stderr, "resource does not exist") {
				t.Fatalf("get after delete: want a not-found failure, got:\n%s", r)
			}
		})
	}
	for _, k := range v3.Kinds() {
		if !k.Internal && !covered[k.Kind] {
			t.Errorf("kind %s has no round-trip case", k.Kind)
		}
	}
}

// assertStoredEquals decodes `get -o yaml` output and compares it with the
// document that was written, after the defaults calicoctl applies, ignoring
// the metadata the store sets.
func assertStoredEquals(t *testing.T, gotYAML, wroteYAML, namespace string) {
	t.Helper()
	got := decodeOne(t, gotYAML)
	if created := got.GetCreationTimestamp(); got.GetResourceVersion() == "" || got.GetUID() == "" || created.IsZero() {
		t.Errorf("stored metadata missing: rv %q uid %q created %v", got.GetResourceVersion(), got.GetUID(), got.GetCreationTimestamp())
	}
	got.SetResourceVersion("")
	got.SetUID("")
	got.SetCreationTimestamp(metav1.Time{})

	want := decodeOne(t, wroteYAML)
	if namespace != "" && want.GetNamespace() == "" {
		want.SetNamespace(namespace)
	}
	v3.SetDefaults(want)
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Errorf("stored resource differs from the file:\n got  %s\n want %s", gj, wj)
	}
}

func decodeOne(t *testing.T, s string) v3.Resource {
	t.Helper()
	r, err := v3.Decode([]byte(s))
	if err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return r
}
