package v3

import (
	"errors"
	"strings"
	"testing"
)

// manifest builds a one-resource YAML document; spec holds the spec's lines
// without indentation ("" for no spec).
func manifest(kind, name, spec string) string {
	var b strings.Builder
	b.WriteString("apiVersion: projectcalico.org/v3\nkind: " + kind + "\nmetadata:\n  name: " + name + "\n")
	if spec != "" {
		b.WriteString("spec:\n")
		for _, line := range strings.Split(strings.TrimRight(spec, "\n"), "\n") {
			b.WriteString("  " + line + "\n")
		}
	}
	return b.String()
}

func namespaced(kind, ns, name, spec string) string {
	return strings.Replace(manifest(kind, name, spec), "metadata:\n", "metadata:\n  namespace: "+ns+"\n", 1)
}

// decodeDefaultValidate is what calicoctl create/apply does with a file.
func decodeDefaultValidate(src string) error {
	docs, err := DecodeAll([]byte(src))
	if err != nil {
		return err
	}
	for _, d := range docs {
		SetDefaults(d.Resource)
		if err := Validate(d.Resource); err != nil {
			return err
		}
	}
	return nil
}

const (
	tcpRule   = "ingress:\n- action: Allow\n  protocol: TCP\n"
	goodPeer  = "peerIP: 10.0.0.1\nasNumber: 64513\n"
	wepPrefix = "node: node1\norchestrator: k8s\npod: p\ninterfaceName: cali1\n"
)

func TestBadInputs(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		// Documents and the codec.
		{"malformed yaml", "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: [\n", "document 1: invalid YAML: yaml: line 3: did not find expected node content"},
		{"duplicate key", manifest("IPPool", "p1", "cidr: 10.0.0.0/8\ncidr: 10.1.0.0/16"), `document 1: invalid YAML: yaml: unmarshal errors: line 7: key "cidr" already set in map`},
		{"duplicate key in JSON", `{"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"p"},"spec":{"cidr":"10.0.0.0/8","cidr":"10.0.0.0/9"}}`, `key "cidr" already set in map`},
		{"not a mapping", "- a\n- b\n", "a resource must be a YAML mapping or JSON object"},
		{"missing kind", "apiVersion: projectcalico.org/v3\nmetadata:\n  name: x\n", "document 1: kind: missing"},
		{"kind not a string", "apiVersion: projectcalico.org/v3\nkind: 5\n", "kind: expected a string, got number 5"},
		{"wrong apiVersion", strings.Replace(manifest("IPPool", "p1", "cidr: 10.0.0.0/8"), "/v3", "/v2", 1), `apiVersion: "projectcalico.org/v2" is not supported, use "projectcalico.org/v3"`},
		{"missing apiVersion", "kind: IPPool\nmetadata:\n  name: p1\n", `apiVersion: missing, use "projectcalico.org/v3"`},
		{"unknown kind", manifest("Pool", "p1", ""), `kind: "Pool" is not a known resource kind`},
		{"kind in wrong case", manifest("ippool", "p1", ""), `kind: "ippool" is not a known resource kind (did you mean "IPPool"?)`},
		{"internal kind", manifest("IPAMBlock", "b", ""), `kind: "IPAMBlock" is not a known resource kind`},
		{"second document fails", manifest("IPPool", "p1", "cidr: 10.0.0.0/8") + "---\n" + manifest("IPPool", "p2", "cidrr: x"), `document 2: IPPool "p2": unknown field "spec.cidrr"`},
		{"list with unknown item field", "apiVersion: projectcalico.org/v3\nkind: IPPoolList\nitems:\n- apiVersion: projectcalico.org/v3\n  kind: IPPool\n  metadata:\n    name: b\n  spec:\n    x: 1\n", `document 1: items[0]: IPPool "b": unknown field "spec.x"`},
		{"list with wrong item kind", "apiVersion: projectcalico.org/v3\nkind: IPPoolList\nitems:\n- apiVersion: projectcalico.org/v3\n  kind: BGPPeer\n  metadata:\n    name: b\n", `items[0]: kind: "BGPPeer" does not belong in kind IPPoolList`},
		{"list unknown top-level field", "apiVersion: v1\nkind: List\nitemz: []\n", `List: unknown field "itemz"`},

		// Unknown fields at several depths.
		{"unknown root field", "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p1\nspecs: {}\n", `IPPool "p1": unknown field "specs" (did you mean "spec"?)`},
		{"unknown spec field", manifest("IPPool", "p1", "cidrr: 10.0.0.0/8"), `IPPool "p1": unknown field "spec.cidrr" (did you mean "spec.cidr"?)`},
		{"field in wrong case", manifest("IPPool", "p1", "CIDR: 10.0.0.0/8"), `unknown field "spec.CIDR" (did you mean "spec.cidr"?)`},
		{"unknown metadata field", strings.Replace(manifest("IPPool", "p1", ""), "  name: p1\n", "  name: p1\n  labelz: {}\n", 1), `unknown field "metadata.labelz"`},
		{"unknown rule field", namespaced("NetworkPolicy", "ns", "np", "ingress:\n- action: Allow\n  source:\n    netz: [10.0.0.0/8]"), `NetworkPolicy "ns/np": unknown field "spec.ingress[0].source.netz"`},
		{"unknown nested field", manifest("BGPPeer", "p", goodPeer+"password:\n  secretKeyRef:\n    nam: s\n    key: k"), `unknown field "spec.password.secretKeyRef.nam"`},

		// Wrongly typed values.
		{"string for int", manifest("IPPool", "p1", "cidr: 10.0.0.0/8\nblockSize: abc"), `IPPool "p1": spec.blockSize: expected a number, got string "abc"`},
		{"float for int", manifest("IPPool", "p1", "cidr: 10.0.0.0/8\nblockSize: 26.5"), `spec.blockSize: expected an integer, got number 26.5`},
		{"string for bool", manifest("IPPool", "p1", "cidr: 10.0.0.0/8\nnatOutgoing: \"yes\""), `spec.natOutgoing: expected true or false, got string "yes"`},
		{"scalar for list", manifest("IPPool", "p1", "cidr: 10.0.0.0/8\nallowedUses: Workload"), `spec.allowedUses: expected a list, got string "Workload"`},
		{"number for string label", strings.Replace(manifest("IPPool", "p1", ""), "  name: p1\n", "  name: p1\n  labels:\n    app: 1\n", 1), `metadata.labels.app: expected a string, got number 1 (quote it to keep it as text)`},
		{"uint8 out of range", manifest("BGPPeer", "p", goodPeer+"ttlSecurity: 300"), `spec.ttlSecurity: 300 is out of range 0 to 255`},
		{"uint16 out of range", manifest("BGPConfiguration", "default", "listenPort: 70000"), `spec.listenPort: 70000 is out of range 0 to 65535`},
		{"number for duration", manifest("BGPPeer", "p", goodPeer+"keepaliveTime: 30"), `spec.keepaliveTime: expected a duration string like "90s", got number 30`},
		{"bad duration", manifest("BGPPeer", "p", goodPeer+"keepaliveTime: 30x"), `spec.keepaliveTime: "30x" is not a duration`},
		{"unquoted asdot", manifest("BGPPeer", "p", "peerIP: 10.0.0.1\nasNumber: 1.10"), `spec.asNumber: 1.1 is not a valid AS number: write asdot form as a quoted string`},
		{"bad AS string", manifest("BGPPeer", "p", "peerIP: 10.0.0.1\nasNumber: abc"), `spec.asNumber: "abc" is not a valid AS number`},
		{"AS too large", manifest("BGPPeer", "p", "peerIP: 10.0.0.1\nasNumber: 4294967296"), `spec.asNumber: 4294967296 is not a valid AS number`},
		{"bad port range", namespaced("NetworkPolicy", "ns", "np", tcpRule+"  destination:\n    ports: ['90:80']"), `spec.ingress[0].destination.ports[0]: port range "90:80" must be min:max`},
		{"protocol out of range", namespaced("NetworkPolicy", "ns", "np", "ingress:\n- action: Allow\n  protocol: 256"), `spec.ingress[0].protocol: protocol 256 is not a name or a number 0-255`},
		{"bad timestamp", strings.Replace(manifest("IPPool", "p1", ""), "  name: p1\n", "  name: p1\n  creationTimestamp: yesterday\n", 1), `metadata.creationTimestamp: "yesterday" is not an RFC 3339 time`},

		// Metadata.
		{"missing name", "apiVersion: projectcalico.org/v3\nkind: IPPool\nspec:\n  cidr: 10.0.0.0/8\n", `IPPool "": metadata.name: a name is required`},
		{"bad name", manifest("IPPool", "My_Pool", "cidr: 10.0.0.0/8"), `metadata.name: "My_Pool" is not a valid name`},
		{"missing namespace", manifest("NetworkSet", "s", "nets: [10.0.0.0/8]"), `metadata.namespace: a namespace is required: NetworkSet is namespaced`},
		{"bad namespace", namespaced("NetworkSet", "Ns.1", "s", ""), `metadata.namespace: "Ns.1" is not a valid namespace`},
		{"namespace on cluster kind", namespaced("IPPool", "default", "p1", "cidr: 10.0.0.0/8"), `IPPool "default/p1": metadata.namespace: "default" must be empty: IPPool is cluster-scoped`},
		{"bad label key", strings.Replace(manifest("IPPool", "p1", "cidr: 10.0.0.0/8"), "  name: p1\n", "  name: p1\n  labels:\n    bad key: x\n", 1), `metadata.labels["bad key"]: "bad key" is not a valid label key`},
		{"bad label value", strings.Replace(manifest("IPPool", "p1", "cidr: 10.0.0.0/8"), "  name: p1\n", "  name: p1\n  labels:\n    app: -bad-\n", 1), `metadata.labels.app: "-bad-" is not a valid label value`},
		{"policy name with two dots", namespaced("NetworkPolicy", "ns", "a.b.c", ""), `metadata.name: "a.b.c" is not a valid name`},
		{"reserved namespace label", strings.Replace(namespaced("NetworkSet", "ns", "s", ""), "  name: s\n", "  name: s\n  labels:\n    projectcalico.org/namespace: x\n", 1), `metadata.labels["projectcalico.org/namespace"]: "projectcalico.org/namespace" is reserved`},

		// IPPool.
		{"pool without cidr", manifest("IPPool", "p1", "natOutgoing: true"), `IPPool "p1": spec.cidr: a CIDR is required`},
		{"pool bad cidr", manifest("IPPool", "p1", "cidr: 10.0.0.0/33"), `IPPool "p1": spec.cidr: "10.0.0.0/33" is not a valid CIDR`},
		{"pool bare ip", manifest("IPPool", "p1", "cidr: 10.0.0.1"), `spec.cidr: "10.0.0.1" is not a valid CIDR`},
		{"pool not masked", manifest("IPPool", "p1", "cidr: 10.0.0.1/24"), `spec.cidr: "10.0.0.1/24" is not a network address; did you mean 10.0.0.0/24`},
		{"pool v4 link-local", manifest("IPPool", "p1", "cidr: 169.254.0.0/24"), `spec.cidr: "169.254.0.0/24" overlaps the IPv4 link-local range 169.254.0.0/16`},
		{"pool v6 link-local", manifest("IPPool", "p1", "cidr: fe80::/64"), `spec.cidr: "fe80::/64" overlaps the IPv6 link-local range fe80::/10`},
		{"v4 block too big", manifest("IPPool", "p1", "cidr: 10.0.0.0/8\nblockSize: 19"), `spec.blockSize: 19 is out of range: the IPv4 block size must be 20-32`},
		{"v6 block too big", manifest("IPPool", "p1", "cidr: fd00::/48\nblockSize: 64"), `spec.blockSize: 64 is out of range: the IPv6 block size must be 116-128`},
		{"pool smaller than block", manifest("IPPool", "p1", "cidr: 10.0.0.0/28"), `spec.cidr: "10.0.0.0/28" is smaller than one block (/26)`},
		{"bad ipipMode", manifest("IPPool", "p1", "cidr: 10.0.0.0/8\nipipMode: always"), `spec.ipipMode: "always" is not one of Never, Always, CrossSubnet`},
		{"bad vxlanMode", manifest("IPPool", "p1", "cidr: 10.0.0.0/8\nvxlanMode: Enabled"), `spec.vxlanMode: "Enabled" is not one of Never, Always, CrossSubnet`},
		{"yaml boolean word", manifest("IPPool", "p1", "cidr: 10.0.0.0/8\nvxlanMode: On"), `spec.vxlanMode: expected a string, got boolean true (quote it to keep it as text)`},
		{"ipip and vxlan", manifest("IPPool", "p1", "cidr: 10.0.0.0/8\nipipMode: Always\nvxlanMode: CrossSubnet"), `spec.vxlanMode: "CrossSubnet" cannot be combined with ipipMode "Always"`},
		{"ipip on v6", manifest("IPPool", "p1", "cidr: fd00::/48\nipipMode: Always"), `spec.ipipMode: "Always" is not supported on an IPv6 pool`},
		{"bad allowed use", manifest("IPPool", "p1", "cidr: 10.0.0.0/8\nallowedUses: [Workloads]"), `spec.allowedUses[0]: "Workloads" is not one of Workload, Tunnel, LoadBalancer`},
		{"load balancer with workload", manifest("IPPool", "p1", "cidr: 10.0.0.0/8\nallowedUses: [LoadBalancer, Workload]"), `spec.allowedUses[1]: "Workload" cannot be combined with LoadBalancer`},
		{"load balancer with encap", manifest("IPPool", "p1", "cidr: 10.0.0.0/8\nallowedUses: [LoadBalancer]\nvxlanMode: Always"), `spec.vxlanMode: "Always" is not allowed on a LoadBalancer pool`},
		{"bad nodeSelector", manifest("IPPool", "p1", "cidr: 10.0.0.0/8\nnodeSelector: rack =="), `spec.nodeSelector: selector "rack =="`},
		{"bad namespaceSelector", manifest("IPPool", "p1", "cidr: 10.0.0.0/8\nnamespaceSelector: has(a"), `spec.namespaceSelector: selector "has(a"`},
		{"bad assignmentMode", manifest("IPPool", "p1", "cidr: 10.0.0.0/8\nassignmentMode: Auto"), `spec.assignmentMode: "Auto" is not one of Automatic, Manual`},

		// BGPPeer.
		{"bad peerIP", manifest("BGPPeer", "p", "peerIP: 10.0.0.300\nasNumber: 1"), `spec.peerIP: "10.0.0.300" is not a valid peer IP`},
		{"peerIP port 0", manifest("BGPPeer", "p", "peerIP: 10.0.0.1:0\nasNumber: 1"), `spec.peerIP: "10.0.0.1:0" is not a valid peer IP: the port must be 1-65535`},
		{"peerIP without AS", manifest("BGPPeer", "p", "peerIP: 10.0.0.1"), `spec.asNumber: an AS number is required with peerIP`},
		{"node and nodeSelector", manifest("BGPPeer", "p", goodPeer+"node: n1\nnodeSelector: all()"), `spec.nodeSelector: "all()" cannot be combined with node "n1"`},
		{"peerIP and peerSelector", manifest("BGPPeer", "p", goodPeer+"peerSelector: all()"), `spec.peerSelector: "all()" cannot be combined with peerIP "10.0.0.1"`},
		{"no peer", manifest("BGPPeer", "p", "node: n1"), `spec.peerIP: one of peerIP or peerSelector is required`},
		{"peerSelector with AS", manifest("BGPPeer", "p", "peerSelector: all()\nasNumber: 64512"), `spec.asNumber: 64512 must not be set with peerSelector`},
		{"bad peerSelector", manifest("BGPPeer", "p", "peerSelector: \"a in {\""), `spec.peerSelector: selector "a in {"`},
		{"zero keepalive", manifest("BGPPeer", "p", goodPeer+"keepaliveTime: 0s"), `spec.keepaliveTime: "0s" must be more than zero`},
		{"negative restart time", manifest("BGPPeer", "p", goodPeer+"maxRestartTime: -1s"), `spec.maxRestartTime: "-1s" must be more than zero`},
		{"ttlSecurity zero", manifest("BGPPeer", "p", goodPeer+"ttlSecurity: 0"), `spec.ttlSecurity: 0 is out of range 1-255`},
		{"bad sourceAddress", manifest("BGPPeer", "p", goodPeer+"sourceAddress: NodeIP"), `spec.sourceAddress: "NodeIP" is not one of UseNodeIP, None`},
		{"two password sources", manifest("BGPPeer", "p", goodPeer+"password:\n  value: x\n  file: /etc/pw"), `spec.password: only one of secretKeyRef, value and file may be set`},
		{"empty password", manifest("BGPPeer", "p", goodPeer+"password: {}"), `spec.password: one of secretKeyRef, value or file is required`},
		{"secret without key", manifest("BGPPeer", "p", goodPeer+"password:\n  secretKeyRef:\n    name: s"), `spec.password.secretKeyRef.key: a key is required`},
		{"negative local AS count", manifest("BGPPeer", "p", goodPeer+"numAllowedLocalASNumbers: -1"), `spec.numAllowedLocalASNumbers: -1 must not be negative`},
		{"bad nextHopMode", manifest("BGPPeer", "p", goodPeer+"nextHopMode: self"), `spec.nextHopMode: "self" is not one of Auto, Self, Keep`},
		{"bad reversePeering", manifest("BGPPeer", "p", "peerSelector: all()\nreversePeering: Never"), `spec.reversePeering: "Never" is not one of Auto, Manual`},
		{"reachableBy family", manifest("BGPPeer", "p", goodPeer+"reachableBy: fd00::1"), `spec.reachableBy: "fd00::1" is not of the same IP family as peerIP "10.0.0.1"`},

		// BGPConfiguration.
		{"bgpconfig name", manifest("BGPConfiguration", "rack1", "listenPort: 179"), `metadata.name: "rack1" is not a valid name: must be "default" or "node." followed by a node name`},
		{"node config mesh", manifest("BGPConfiguration", "node.n1", "nodeToNodeMeshEnabled: false"), `spec.nodeToNodeMeshEnabled: can only be set on the "default" BGPConfiguration`},
		{"node config AS", manifest("BGPConfiguration", "node.n1", "asNumber: 64513"), `spec.asNumber: can only be set on the "default" BGPConfiguration`},
		{"node config service IPs", manifest("BGPConfiguration", "node.n1", "serviceClusterIPs:\n- cidr: 10.96.0.0/12"), `spec.serviceClusterIPs: can only be set on the "default" BGPConfiguration`},
		{"bad service cidr", manifest("BGPConfiguration", "default", "serviceExternalIPs:\n- cidr: 10.96.0.1/12"), `spec.serviceExternalIPs[0].cidr: "10.96.0.1/12" is not a network address; did you mean 10.96.0.0/12`},
		{"community part too big", manifest("BGPConfiguration", "default", "communities:\n- name: c\n  value: 65536:1\nprefixAdvertisements:\n- cidr: 10.0.0.0/8\n  communities: [c]"), `spec.communities[0].value: "65536:1" is not a valid community: each part of aa:nn must fit in 16 bits`},
		{"community bad format", manifest("BGPConfiguration", "default", "communities:\n- name: c\n  value: abc\nprefixAdvertisements:\n- cidr: 10.0.0.0/8\n  communities: [c]"), `spec.communities[0].value: "abc" is not a valid community: use aa:nn or aa:nn:mm`},
		{"undefined community", manifest("BGPConfiguration", "default", "prefixAdvertisements:\n- cidr: 10.0.0.0/8\n  communities: [undefined-name]"), `spec.prefixAdvertisements[0].communities[0]: "undefined-name" is neither a community value`},
		{"bad log severity", manifest("BGPConfiguration", "default", "logSeverityScreen: Verbose"), `spec.logSeverityScreen: "Verbose" is not one of Trace, Debug, Info, Warning, Error, Fatal`},
		{"mesh password with mesh off", manifest("BGPConfiguration", "default", "nodeToNodeMeshEnabled: false\nnodeMeshPassword:\n  value: x"), `spec.nodeMeshPassword: cannot be set when nodeToNodeMeshEnabled is false`},

		// Node.
		{"node bad ipv4Address", manifest("Node", "n1", "bgp:\n  ipv4Address: 10.0.0.300/24"), `spec.bgp.ipv4Address: "10.0.0.300/24" is not a valid address`},
		{"node v6 in ipv4Address", manifest("Node", "n1", "bgp:\n  ipv4Address: fd00::1/64"), `spec.bgp.ipv4Address: "fd00::1/64" is not an IPv4 address`},
		{"node v4 in ipv6Address", manifest("Node", "n1", "bgp:\n  ipv6Address: 10.0.0.1"), `spec.bgp.ipv6Address: "10.0.0.1" is not an IPv6 address`},
		{"node bad cluster ID", manifest("Node", "n1", "bgp:\n  ipv4Address: 10.0.0.1/24\n  routeReflectorClusterID: 1.2.3"), `spec.bgp.routeReflectorClusterID: "1.2.3" is not a valid cluster ID`},
		{"node AS zero", manifest("Node", "n1", "bgp:\n  ipv4Address: 10.0.0.1/24\n  asNumber: 0"), `spec.bgp.asNumber: 0 is not a valid AS number`},
		{"node empty bgp", manifest("Node", "n1", "bgp: {}"), `spec.bgp: must not be empty`},
		{"node bad name", manifest("Node", "Node_1", ""), `metadata.name: "Node_1" is not a valid name`},

		// FelixConfiguration.
		{"felix name", manifest("FelixConfiguration", "global", ""), `metadata.name: "global" is not a valid name: must be "default" or "node."`},
		{"felix port", manifest("FelixConfiguration", "default", "healthPort: 0"), `spec.healthPort: 0 is out of range 1-65535`},
		{"felix mtu", manifest("FelixConfiguration", "node.n1", "ipipMTU: 500"), `spec.ipipMTU: 500 is out of range: use 0 (auto-detect) or 576-65535`},
		{"felix v6 mtu", manifest("FelixConfiguration", "default", "vxlanMTUV6: 1000"), `spec.vxlanMTUV6: 1000 is out of range: use 0 (auto-detect) or 1280-65535`},
		{"felix iptablesBackend", manifest("FelixConfiguration", "default", "iptablesBackend: nft"), `spec.iptablesBackend: "nft" is not one of Auto, Legacy, NFT`},
		{"felix chainInsertMode", manifest("FelixConfiguration", "default", "chainInsertMode: Prepend"), `spec.chainInsertMode: "Prepend" is not one of Insert, Append`},
		{"felix endpoint to host", manifest("FelixConfiguration", "default", "defaultEndpointToHostAction: ACCEPT"), `spec.defaultEndpointToHostAction: "ACCEPT" is not one of Drop, Accept, Return`},
		{"felix route tables", manifest("FelixConfiguration", "default", "routeTableRange: {min: 1, max: 250}\nrouteTableRanges: [{min: 1, max: 250}]"), `spec.routeTableRange: cannot be combined with routeTableRanges`},
		{"felix failsafe protocol", manifest("FelixConfiguration", "default", "failsafeInboundHostPorts:\n- protocol: ICMP\n  port: 22"), `spec.failsafeInboundHostPorts[0].protocol: "ICMP" is not one of TCP, UDP, SCTP`},
		{"felix nat address", manifest("FelixConfiguration", "default", "natOutgoingAddress: fd00::1"), `spec.natOutgoingAddress: "fd00::1" is not an IPv4 address`},

		// WorkloadEndpoint and HostEndpoint.
		{"wep without node", namespaced("WorkloadEndpoint", "ns", "w", "orchestrator: k8s\npod: p\ninterfaceName: cali1"), `spec.node: a node name is required`},
		{"wep without pod", namespaced("WorkloadEndpoint", "ns", "w", "node: n1\norchestrator: k8s\ninterfaceName: cali1"), `spec.pod: a pod name is required when orchestrator is k8s`},
		{"wep network too wide", namespaced("WorkloadEndpoint", "ns", "w", wepPrefix+"ipNetworks: [10.0.0.0/24]"), `spec.ipNetworks[0]: "10.0.0.0/24" holds more than one address`},
		{"wep bad network", namespaced("WorkloadEndpoint", "ns", "w", wepPrefix+"ipNetworks: [10.0.0.1/32, 10.0.0.300/32]"), `spec.ipNetworks[1]: "10.0.0.300/32" is not a valid CIDR`},
		{"wep nat outside networks", namespaced("WorkloadEndpoint", "ns", "w", wepPrefix+"ipNetworks: [10.0.0.1/32]\nipNATs:\n- internalIP: 10.0.0.9\n  externalIP: 172.16.0.1"), `spec.ipNATs[0].internalIP: "10.0.0.9" is not one of the endpoint's ipNetworks`},
		{"wep long interface", namespaced("WorkloadEndpoint", "ns", "w", "node: n1\norchestrator: k8s\npod: p\ninterfaceName: cali0123456789abcdef"), `spec.interfaceName: "cali0123456789abcdef" is not a valid interface name`},
		{"wep bad mac", namespaced("WorkloadEndpoint", "ns", "w", wepPrefix+"mac: zz:zz"), `spec.mac: "zz:zz" is not a valid MAC address`},
		{"hep without node", manifest("HostEndpoint", "h", "interfaceName: eth0"), `spec.node: a node name is required`},
		{"hep without interface", manifest("HostEndpoint", "h", "node: n1"), `spec.interfaceName: one of interfaceName or expectedIPs is required`},
		{"hep port protocol", manifest("HostEndpoint", "h", "node: n1\ninterfaceName: '*'\nports:\n- name: p\n  port: 1\n  protocol: ICMP"), `spec.ports[0].protocol: "ICMP" does not have ports`},

		// Policy.
		{"bad action", namespaced("NetworkPolicy", "ns", "np", "ingress:\n- action: allow"), `spec.ingress[0].action: "allow" is not one of Allow, Deny, Log, Pass`},
		{"missing action", namespaced("NetworkPolicy", "ns", "np", "egress:\n- protocol: TCP"), `spec.egress[0].action: an action is required`},
		{"bad ipVersion", namespaced("NetworkPolicy", "ns", "np", "ingress:\n- action: Allow\n  ipVersion: 5"), `spec.ingress[0].ipVersion: 5 is not one of 4, 6`},
		{"protocol in lower case", namespaced("NetworkPolicy", "ns", "np", "ingress:\n- action: Allow\n  protocol: tcp"), `spec.ingress[0].protocol: "tcp" is not a valid protocol`},
		{"protocol zero", manifest("GlobalNetworkPolicy", "gnp", "egress:\n- action: Allow\n  protocol: 0"), `spec.egress[0].protocol: 0 is not a valid protocol number`},
		{"ports without protocol", namespaced("NetworkPolicy", "ns", "np", "ingress:\n- action: Allow\n  destination:\n    ports: [80]"), `spec.ingress[0].destination.ports: rules that specify ports must set protocol to TCP, UDP or SCTP`},
		{"ports with icmp", namespaced("NetworkPolicy", "ns", "np", "ingress:\n- action: Allow\n  protocol: ICMP\n  source:\n    notPorts: [80]"), `spec.ingress[0].source.notPorts: rules that specify ports must set protocol to TCP, UDP or SCTP`},
		{"port zero", namespaced("NetworkPolicy", "ns", "np", tcpRule+"  destination:\n    ports: [0]"), `spec.ingress[0].destination.ports[0]: "0" is not a valid port or range`},
		{"bad named port", namespaced("NetworkPolicy", "ns", "np", tcpRule+"  destination:\n    ports: [Not_A_Port]"), `spec.ingress[0].destination.ports[0]: "Not_A_Port" is not a valid port name`},
		{"icmp type range", namespaced("NetworkPolicy", "ns", "np", "ingress:\n- action: Allow\n  protocol: ICMP\n  icmp:\n    type: 255"), `spec.ingress[0].icmp.type: 255 is out of range 0-254`},
		{"icmp code without type", namespaced("NetworkPolicy", "ns", "np", "ingress:\n- action: Allow\n  protocol: ICMP\n  icmp:\n    code: 0"), `spec.ingress[0].icmp.code: an ICMP code needs an ICMP type`},
		{"icmp without protocol", namespaced("NetworkPolicy", "ns", "np", "ingress:\n- action: Allow\n  icmp:\n    type: 8"), `spec.ingress[0].icmp: rules that specify ICMP fields must set protocol to ICMP or ICMPv6`},
		{"icmp with ipVersion 6", namespaced("NetworkPolicy", "ns", "np", "ingress:\n- action: Allow\n  protocol: ICMP\n  ipVersion: 6"), `spec.ingress[0].ipVersion: 6 does not match protocol ICMP: must be 4`},
		{"bad rule net", namespaced("NetworkPolicy", "ns", "np", "ingress:\n- action: Allow\n  source:\n    nets: [10.0.0.0/8, 10.0.0.0/40]"), `spec.ingress[0].source.nets[1]: "10.0.0.0/40" is not a valid CIDR`},
		{"mixed families", namespaced("NetworkPolicy", "ns", "np", "ingress:\n- action: Allow\n  source:\n    nets: [10.0.0.0/8]\n  destination:\n    nets: [fd00::/8]"), `spec.ingress[0].destination.nets[0]: "fd00::/8" mixes IP families`},
		{"net vs ipVersion", namespaced("NetworkPolicy", "ns", "np", "ingress:\n- action: Allow\n  ipVersion: 6\n  source:\n    notNets: [10.0.0.0/8]"), `spec.ingress[0].source.notNets[0]: "10.0.0.0/8" does not match the rule's ipVersion 6`},
		{"bad type", namespaced("NetworkPolicy", "ns", "np", "types: [ingress]"), `spec.types[0]: "ingress" is not one of Ingress, Egress`},
		{"duplicate type", namespaced("NetworkPolicy", "ns", "np", "types: [Ingress, Ingress]"), `spec.types[1]: "Ingress" is listed twice`},
		{"bad policy selector", namespaced("NetworkPolicy", "ns", "np", "selector: role = 'db'"), `spec.selector: selector "role = 'db'"`},
		{"bad rule selector", namespaced("NetworkPolicy", "ns", "np", "ingress:\n- action: Allow\n  source:\n    selector: \"!\""), `spec.ingress[0].source.selector: selector "!"`},
		{"global() in policy selector", manifest("GlobalNetworkPolicy", "gnp", "selector: global()"), `spec.selector: "global()": global() can only be used in a rule's namespaceSelector`},
		{"preDNAT and doNotTrack", manifest("GlobalNetworkPolicy", "gnp", "preDNAT: true\ndoNotTrack: true\napplyOnForward: true"), `spec.preDNAT: preDNAT and doNotTrack cannot both be true`},
		{"preDNAT without applyOnForward", manifest("GlobalNetworkPolicy", "gnp", "preDNAT: true"), `spec.applyOnForward: must be true when preDNAT or doNotTrack is true`},
		{"bad tier", namespaced("NetworkPolicy", "ns", "np", "tier: My.Tier"), `spec.tier: "My.Tier" is not a valid tier name`},
		{"service in egress source", namespaced("NetworkPolicy", "ns", "np", "egress:\n- action: Allow\n  source:\n    services:\n      name: svc"), `spec.egress[0].source.services: not allowed in an egress rule's source`},

		// Network sets and IPAMConfiguration.
		{"networkset bad net", namespaced("NetworkSet", "ns", "s", "nets: [198.51.100.0/28, 198.51.100.0/33]"), `NetworkSet "ns/s": spec.nets[1]: "198.51.100.0/33" is not a valid CIDR`},
		{"globalnetworkset bad net", manifest("GlobalNetworkSet", "s", "nets: [not-a-net]"), `spec.nets[0]: "not-a-net" is not a valid CIDR`},
		{"ipamconfig name", manifest("IPAMConfiguration", "cluster", ""), `metadata.name: "cluster" is not a valid name: the only IPAMConfiguration is "default"`},
		{"ipamconfig max blocks", manifest("IPAMConfiguration", "default", "maxBlocksPerHost: -1"), `spec.maxBlocksPerHost: -1 must not be negative`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := decodeDefaultValidate(tc.src)
			if err == nil {
				t.Fatalf("accepted; want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error\n  %v\ndoes not contain\n  %s", err, tc.want)
			}
		})
	}
}

func TestValidationListsEveryProblem(t *testing.T) {
	r, err := Decode([]byte(manifest("IPPool", "p1", "cidr: 10.0.0.1/24\nblockSize: 40\nipipMode: Sometimes\nnodeSelector: a ==")))
	if err != nil {
		t.Fatal(err)
	}
	err = Validate(r)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %T %v, want *ValidationError", err, err)
	}
	fields := map[string]bool{}
	for _, fe := range ve.Errors {
		fields[fe.Field] = true
	}
	for _, want := range []string{"spec.cidr", "spec.blockSize", "spec.ipipMode", "spec.nodeSelector"} {
		if !fields[want] {
			t.Errorf("no problem reported for %s in %v", want, err)
		}
	}
	if ve.Kind != "IPPool" || ve.Name != "p1" {
		t.Errorf("ValidationError names %s %q, want IPPool \"p1\"", ve.Kind, ve.Name)
	}
}

func TestDecodeErrorTypes(t *testing.T) {
	src := manifest("IPPool", "p1", "cidr: 10.0.0.0/8") + "---\n# only a comment\n---\n" + manifest("IPPool", "p2", "cidrr: x\nblockSize: \"26\"")
	docs, err := DecodeAll([]byte(src))
	if len(docs) != 1 || docs[0].Resource.GetName() != "p1" {
		t.Errorf("got %d documents before the error, want p1 only", len(docs))
	}
	var de *DecodeError
	if !errors.As(err, &de) || de.Index != 1 {
		t.Fatalf("got %v, want a *DecodeError for document index 1 (comment-only documents do not count)", err)
	}
	var se *SchemaError
	if !errors.As(err, &se) {
		t.Fatalf("got %T, want a *SchemaError inside", de.Err)
	}
	if len(se.Errors) != 2 || se.Errors[0].Field != "spec.blockSize" || se.Errors[1].Field != "spec.cidrr" {
		t.Errorf("got problems %+v, want spec.blockSize and spec.cidrr", se.Errors)
	}
}
