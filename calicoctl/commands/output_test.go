package commands_test

import (
	"regexp"
	"strings"
	"testing"
)

const outputFixture = hdr + `kind: IPPool
metadata:
  name: pool-a
spec:
  cidr: 10.1.0.0/16
  ipipMode: Always
  natOutgoing: true
---
` + hdr + `kind: IPPool
metadata:
  name: pool-v6
spec:
  cidr: fd00:10::/48
  vxlanMode: CrossSubnet
  nodeSelector: rack == 'r1'
  disabled: true
---
` + hdr + `kind: BGPPeer
metadata:
  name: tor
spec:
  peerIP: 192.0.2.1
  asNumber: 65001
---
` + hdr + `kind: BGPPeer
metadata:
  name: rack-r1
spec:
  peerIP: 192.0.2.2
  asNumber: 65002
  nodeSelector: rack == 'r1'
---
` + hdr + `kind: BGPPeer
metadata:
  name: node1-only
spec:
  peerIP: 192.0.2.3
  asNumber: 65003
  node: node1
---
` + hdr + `kind: Node
metadata:
  name: node1
spec:
  bgp:
    ipv4Address: 192.0.2.10/24
---
` + hdr + `kind: Node
metadata:
  name: node2
spec:
  bgp:
    asNumber: 65010
    ipv4Address: 192.0.2.11/24
    ipv6Address: fd00::11/64
`

func TestGetOutputFormats(t *testing.T) {
	h := newHarness(t)
	r := h.ok("create", "-f", h.file("fixture.yaml", outputFixture))
	if r.stdout != "Successfully created 7 resource(s)\n" {
		t.Fatalf("create of a mixed file printed %q", r.stdout)
	}

	cases := []struct {
		args []string
		want string
	}{
		{[]string{"get", "ippools"},
			"NAME      CIDR           SELECTOR       \n" +
				"pool-a    10.1.0.0/16    all()          \n" +
				"pool-v6   fd00:10::/48   rack == 'r1'   \n\n"},
		{[]string{"get", "ippool", "-o", "wide"},
			"NAME      CIDR           NAT     IPIPMODE   VXLANMODE     DISABLED   DISABLEBGPEXPORT   SELECTOR       ASSIGNMENTMODE   \n" +
				"pool-a    10.1.0.0/16    true    Always     Never         false      false              all()          Automatic        \n" +
				"pool-v6   fd00:10::/48   false   Never      CrossSubnet   true       false              rack == 'r1'   Automatic        \n\n"},
		{[]string{"get", "pools", "pool-v6", "-o", "custom-columns=NAME,VXLANMODE,DISABLED"},
			"NAME      VXLANMODE     DISABLED   \n" +
				"pool-v6   CrossSubnet   true       \n\n"},
		{[]string{"get", "bgppeers"},
			"NAME         PEERIP      NODE           ASN     \n" +
				"node1-only   192.0.2.3   node1          65003   \n" +
				"rack-r1      192.0.2.2   rack == 'r1'   65002   \n" +
				"tor          192.0.2.1   (global)       65001   \n\n"},
		{[]string{"get", "bgpp", "tor", "rack-r1", "-o", "wide"},
			"NAME      PEERIP      NODE           ASN     \n" +
				"tor       192.0.2.1   (global)       65001   \n" +
				"rack-r1   192.0.2.2   rack == 'r1'   65002   \n\n"},
		{[]string{"get", "bgppeer", "-o", "custom-columns=NAME,ASN"},
			"NAME         ASN     \n" +
				"node1-only   65003   \n" +
				"rack-r1      65002   \n" +
				"tor          65001   \n\n"},
		{[]string{"get", "nodes"},
			"NAME    \n" +
				"node1   \n" +
				"node2   \n\n"},
		// No BGPConfiguration yet: node1 inherits Calico's default AS number.
		{[]string{"get", "nodes", "-o", "wide"},
			"NAME    ASN       IPV4            IPV6          \n" +
				"node1   (64512)   192.0.2.10/24                 \n" +
				"node2   65010     192.0.2.11/24   fd00::11/64   \n\n"},
		{[]string{"get", "node", "node1", "-o", "custom-columns=NAME,IPV4"},
			"NAME    IPV4            \n" +
				"node1   192.0.2.10/24   \n\n"},
		{[]string{"get", "ippool", "pool-a", "-o", "go-template={{range .}}{{.ObjectMeta.Name}} {{.Spec.CIDR}} {{.Spec.BlockSize}}{{end}}"},
			"pool-a 10.1.0.0/16 26"},
		{[]string{"get", "ippools", "-o", "go-template={{range .}}{{.Kind}}:{{range .Items}} {{.ObjectMeta.Name}}{{end}}{{end}}"},
			"IPPoolList: pool-a pool-v6"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			h.t = t
			got := h.ok(tc.args...).stdout
			if got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", dots(got), dots(tc.want))
			}
		})
	}

	t.Run("inherited ASN follows the BGPConfiguration", func(t *testing.T) {
		h.t = t
		h.ok("apply", "-f", h.file("bgpconfig.yaml", hdr+"kind: BGPConfiguration\nmetadata:\n  name: default\nspec:\n  asNumber: 65000\n  logSeverityScreen: Info\n"))
		got := h.ok("get", "nodes", "-o", "wide").stdout
		want := "NAME    ASN       IPV4            IPV6          \n" +
			"node1   (65000)   192.0.2.10/24                 \n" +
			"node2   65010     192.0.2.11/24   fd00::11/64   \n\n"
		if got != want {
			t.Errorf("got:\n%s\nwant:\n%s", dots(got), dots(want))
		}
		got = h.ok("get", "bgpconfigurations").stdout
		want = "NAME      LOGSEVERITY   MESHENABLED   ASNUMBER   \n" +
			"default   Info          true          65000      \n\n"
		if got != want {
			t.Errorf("got:\n%s\nwant:\n%s", dots(got), dots(want))
		}
	})

	jsonCases := []struct {
		args []string
		want string
	}{
		{[]string{"get", "ippool", "pool-a", "-o", "json"}, `{
  "kind": "IPPool",
  "apiVersion": "projectcalico.org/v3",
  "metadata": {
    "name": "pool-a",
    "uid": "UID",
    "resourceVersion": "RV",
    "creationTimestamp": "TIME"
  },
  "spec": {
    "cidr": "10.1.0.0/16",
    "vxlanMode": "Never",
    "ipipMode": "Always",
    "natOutgoing": true,
    "blockSize": 26,
    "nodeSelector": "all()",
    "allowedUses": [
      "Workload",
      "Tunnel"
    ],
    "assignmentMode": "Automatic"
  }
}
`},
		{[]string{"get", "bgppeer", "tor", "-o", "json"}, `{
  "kind": "BGPPeer",
  "apiVersion": "projectcalico.org/v3",
  "metadata": {
    "name": "tor",
    "uid": "UID",
    "resourceVersion": "RV",
    "creationTimestamp": "TIME"
  },
  "spec": {
    "peerIP": "192.0.2.1",
    "asNumber": 65001
  }
}
`},
		{[]string{"get", "nodes", "-o", "json"}, `{
  "apiVersion": "projectcalico.org/v3",
  "kind": "NodeList",
  "items": [
    {
      "kind": "Node",
      "apiVersion": "projectcalico.org/v3",
      "metadata": {
        "name": "node1",
        "uid": "UID",
        "resourceVersion": "RV",
        "creationTimestamp": "TIME"
      },
      "spec": {
        "bgp": {
          "ipv4Address": "192.0.2.10/24"
        }
      }
    },
    {
      "kind": "Node",
      "apiVersion": "projectcalico.org/v3",
      "metadata": {
        "name": "node2",
        "uid": "UID",
        "resourceVersion": "RV",
        "creationTimestamp": "TIME"
      },
      "spec": {
        "bgp": {
          "asNumber": 65010,
          "ipv4Address": "192.0.2.11/24",
          "ipv6Address": "fd00::11/64"
        }
      }
    }
  ],
  "metadata": {
    "resourceVersion": "RV"
  }
}
`},
	}
	uid := regexp.MustCompile(`"uid": "[^"]+"`)
	rv := regexp.MustCompile(`"resourceVersion": "[0-9]+"`)
	ts := regexp.MustCompile(`"creationTimestamp": "[^"]+"`)
	for _, tc := range jsonCases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			h.t = t
			got := h.ok(tc.args...).stdout
			got = uid.ReplaceAllString(got, `"uid": "UID"`)
			got = rv.ReplaceAllString(got, `"resourceVersion": "RV"`)
			got = ts.ReplaceAllString(got, `"creationTimestamp": "TIME"`)
			if got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestGetNamespaces(t *testing.T) {
	h := newHarness(t)
	wep := func(ns, pod, ip string) string {
		return hdr + "kind: WorkloadEndpoint\nmetadata:\n  name: node1-k8s-" + pod + "-eth0\n  namespace: " + ns +
			"\nspec:\n  orchestrator: k8s\n  node: node1\n  pod: " + pod + "\n  endpoint: eth0\n  interfaceName: cali" + pod + "\n  ipNetworks:\n  - " + ip + "\n"
	}
	h.ok("create", "-f", h.file("weps.yaml", wep("default", "web", "10.1.0.5/32")+"---\n"+wep("prod", "db", "10.1.0.6/32")))

	cases := []struct {
		args []string
		want string
	}{
		{[]string{"get", "weps"},
			"WORKLOAD   NODE    NETWORKS      INTERFACE   \n" +
				"web        node1   10.1.0.5/32   caliweb     \n\n"},
		{[]string{"get", "weps", "-n", "prod"},
			"NAMESPACE   WORKLOAD   NODE    NETWORKS      INTERFACE   \n" +
				"prod        db         node1   10.1.0.6/32   calidb      \n\n"},
		{[]string{"get", "workloadendpoints", "-A"},
			"NAMESPACE   WORKLOAD   NODE    NETWORKS      INTERFACE   \n" +
				"default     web        node1   10.1.0.5/32   caliweb     \n" +
				"prod        db         node1   10.1.0.6/32   calidb      \n\n"},
		{[]string{"get", "wep", "-A", "-o", "wide"},
			"NAMESPACE   NAME                 WORKLOAD   NODE    NETWORKS      INTERFACE   PROFILES   NATS   \n" +
				"default     node1-k8s-web-eth0   web        node1   10.1.0.5/32   caliweb                       \n" +
				"prod        node1-k8s-db-eth0    db         node1   10.1.0.6/32   calidb                        \n\n"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			h.t = t
			got := h.ok(tc.args...).stdout
			if got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", dots(got), dots(tc.want))
			}
		})
	}

	t.Run("missing names fail after printing the found ones", func(t *testing.T) {
		h.t = t
		r := h.run("", "get", "wep", "-n", "prod", "node1-k8s-db-eth0", "nothere")
		if r.err == nil || !strings.Contains(r.stderr, "WorkloadEndpoint(prod/nothere): resource does not exist") {
			t.Fatalf("want a not-found failure:\n%s", r)
		}
		if !strings.Contains(r.stdout, "calidb") {
			t.Errorf("the found resource was not printed:\n%s", r)
		}
	})
	t.Run("-A with a name is refused", func(t *testing.T) {
		h.t = t
		if r := h.run("", "get", "wep", "x", "-A"); r.err == nil {
			t.Fatalf("want failure:\n%s", r)
		}
	})
}

// dots makes trailing spaces visible in failure messages.
func dots(s string) string { return strings.ReplaceAll(s, " ", "·") }
