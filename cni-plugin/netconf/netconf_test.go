package netconf

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
)

// calicoYAML is calico.yaml's netconf with every key Tabby reads set to a
// non-default value, plus keys Calico has and Tabby ignores.
const calicoYAML = `{
  "cniVersion": "1.1.0",
  "name": "k8s-pod-network",
  "type": "calico",
  "log_level": "Warning",
  "log_file_path": "/var/log/calico/cni/cni.log",
  "log_file_max_size": 50,
  "log_file_max_age": 7,
  "log_file_max_count": 3,
  "datastore_type": "etcdv3",
  "etcd_endpoints": "http://10.0.0.1:2379,http://10.0.0.2:2379",
  "nodename": "node-a",
  "nodename_file": "/etc/calico/nodename",
  "nodename_file_optional": true,
  "mtu": 1440,
  "ipam": {"type": "calico-ipam", "assign_ipv4": "true", "assign_ipv6": true,
           "ipv4_pools": ["10.1.0.0/16", " pool-b "], "ipv6_pools": ["fd00::/48"]},
  "policy": {"type": "k8s"},
  "kubernetes": {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig", "k8s_api_root": "https://10.96.0.1:443"},
  "agent_socket": "/run/tabby/agent.sock",
  "feature_control": {"floating_ips": true},
  "container_settings": {"allow_ip_forwarding": false},
  "etcd_ca_cert_file": "/etc/ca.pem",
  "some_future_key": [1, 2, 3],
  "capabilities": {"portMappings": true}
}`

func TestParseEveryCalicoKey(t *testing.T) {
	c, err := Parse([]byte(calicoYAML))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &NetConf{
		CNIVersion: "1.1.0",
		Name:       "k8s-pod-network",
		Type:       "calico",
		IPAM: IPAM{Type: "calico-ipam", AssignIPv4: true, AssignIPv6: true,
			IPv4Pools: []string{"10.1.0.0/16", " pool-b "}, IPv6Pools: []string{"fd00::/48"}},
		MTU:                  1440,
		Nodename:             "node-a",
		NodenameFile:         "/etc/calico/nodename",
		NodenameFileOptional: true,
		DatastoreType:        "etcdv3",
		EtcdEndpoints:        "http://10.0.0.1:2379,http://10.0.0.2:2379",
		LogLevel:             "Warning",
		LogFilePath:          "/var/log/calico/cni/cni.log",
		LogFileMaxSize:       50,
		LogFileMaxAge:        7,
		LogFileMaxCount:      3,
		Policy:               Policy{Type: "k8s"},
		Kubernetes:           Kubernetes{Kubeconfig: "/etc/cni/net.d/calico-kubeconfig", K8sAPIRoot: "https://10.96.0.1:443"},
		AgentSocket:          "/run/tabby/agent.sock",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", c, want)
	}
	if got := c.SlogLevel(); got != "warn" {
		t.Errorf("SlogLevel() = %q, want warn", got)
	}
	v4, v6 := c.IPAM.Pools()
	if !reflect.DeepEqual(v4, []string{"10.1.0.0/16", "pool-b"}) || !reflect.DeepEqual(v6, []string{"fd00::/48"}) {
		t.Errorf("Pools() = %q, %q", v4, v6)
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(`{"cniVersion":"1.0.0","name":"n","type":"calico","ipam":{"type":"host-local"}}`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.AgentSocket != DefaultAgentSocket || c.NodenameFile != DefaultNodenameFile {
		t.Errorf("defaults: agent_socket %q nodename_file %q", c.AgentSocket, c.NodenameFile)
	}
	if !c.IPAM.AssignIPv4 || c.IPAM.AssignIPv6 {
		t.Errorf("assign defaults: v4 %t v6 %t, want true false (Calico's)", c.IPAM.AssignIPv4, c.IPAM.AssignIPv6)
	}
	if c.MTU != 0 || c.SlogLevel() != "info" {
		t.Errorf("mtu %d level %q", c.MTU, c.SlogLevel())
	}
	v4, v6 := c.IPAM.Pools()
	if v4 != nil || v6 != nil {
		t.Errorf("pools %q %q, want none (automatic)", v4, v6)
	}
}

func TestParseTopLevelPoolsAndIPAMWins(t *testing.T) {
	c, err := Parse([]byte(`{"name":"n","ipv4_pools":["10.0.0.0/24"],"ipv6_pools":["fd00::/64"],"ipam":{"type":"calico-ipam","ipv6_pools":["fd01::/64"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.IPAM.IPv4Pools, []string{"10.0.0.0/24"}) || !reflect.DeepEqual(c.IPAM.IPv6Pools, []string{"fd01::/64"}) {
		t.Errorf("pools v4 %q v6 %q", c.IPAM.IPv4Pools, c.IPAM.IPv6Pools)
	}
}

func TestParseNullIsUnset(t *testing.T) {
	c, err := Parse([]byte(`{"name":"n","mtu":null,"agent_socket":null,"ipam":{"type":"calico-ipam","assign_ipv4":null}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.MTU != 0 || c.AgentSocket != DefaultAgentSocket || !c.IPAM.AssignIPv4 {
		t.Errorf("null changed a default: %+v", c)
	}
}

func TestParseWrongTypesNameTheKey(t *testing.T) {
	tests := []struct {
		name, conf, want string
	}{
		{"mtu string", `{"mtu":"abc"}`, `netconf: "mtu": expected a number, got string "abc"`},
		{"mtu numeric string", `{"mtu":"1440"}`, `netconf: "mtu": expected a number, got string "1440"`},
		{"mtu fraction", `{"mtu":1440.5}`, `netconf: "mtu": expected a whole number, got 1440.5`},
		{"mtu range", `{"mtu":40}`, `netconf: "mtu": 40 is out of range: use 68 to 65535, or 0 to take the MTU from calico-node`},
		{"mtu negative", `{"mtu":-1}`, `netconf: "mtu": -1 is out of range`},
		{"nodename number", `{"nodename":7}`, `netconf: "nodename": expected a string, got number 7`},
		{"datastore_type bool", `{"datastore_type":true}`, `netconf: "datastore_type": expected a string, got boolean true`},
		{"etcd_endpoints list", `{"etcd_endpoints":["http://a:2379"]}`, `netconf: "etcd_endpoints": expected a string, got a list`},
		{"log_level number", `{"log_level":3}`, `netconf: "log_level": expected a string, got number 3`},
		{"log_level unknown", `{"log_level":"loud"}`, `netconf: "log_level": "loud" is not a log level: use debug, info, warning or error`},
		{"policy string", `{"policy":"k8s"}`, `netconf: "policy": expected an object, got string "k8s"`},
		{"policy.type number", `{"policy":{"type":1}}`, `netconf: "policy.type": expected a string, got number 1`},
		{"kubernetes list", `{"kubernetes":[]}`, `netconf: "kubernetes": expected an object, got a list`},
		{"kubernetes.kubeconfig", `{"kubernetes":{"kubeconfig":{}}}`, `netconf: "kubernetes.kubeconfig": expected a string, got an object`},
		{"ipam string", `{"ipam":"calico-ipam"}`, `netconf: "ipam": expected an object, got string "calico-ipam"`},
		{"ipam.type", `{"ipam":{"type":5}}`, `netconf: "ipam.type": expected a string, got number 5`},
		{"assign_ipv4 number", `{"ipam":{"assign_ipv4":1}}`, `netconf: "ipam.assign_ipv4": expected a boolean or the string "true" or "false", got number 1`},
		{"assign_ipv6 word", `{"ipam":{"assign_ipv6":"yes"}}`, `netconf: "ipam.assign_ipv6": expected "true" or "false", got string "yes"`},
		{"ipv4_pools string", `{"ipam":{"ipv4_pools":"10.0.0.0/8"}}`, `netconf: "ipam.ipv4_pools": expected a list of strings, got string "10.0.0.0/8"`},
		{"ipv6_pools item", `{"ipam":{"ipv6_pools":["fd00::/48", 3]}}`, `netconf: "ipam.ipv6_pools[1]": expected a string, got number 3`},
		{"top ipv4_pools", `{"ipv4_pools":{}}`, `netconf: "ipv4_pools": expected a list of strings, got an object`},
		{"agent_socket number", `{"agent_socket":1}`, `netconf: "agent_socket": expected a string, got number 1`},
		{"agent_socket relative", `{"agent_socket":"agent.sock"}`, `netconf: "agent_socket": "agent.sock" is not an absolute path`},
		{"nodename_file relative", `{"nodename_file":"nodename"}`, `netconf: "nodename_file": "nodename" is not an absolute path`},
		{"nodename_file_optional string", `{"nodename_file_optional":"true"}`, `netconf: "nodename_file_optional": expected a boolean, got string "true"`},
		{"log_file_max_size string", `{"log_file_max_size":"10"}`, `netconf: "log_file_max_size": expected a number, got string "10"`},
		{"prevResult list", `{"prevResult":[]}`, `netconf: "prevResult": expected an object, got a list`},
		{"valid-attachments object", `{"cni.dev/valid-attachments":{}}`, `netconf: "cni.dev/valid-attachments": expected a list of objects, got an object`},
		{"cniVersion number", `{"cniVersion":1.0}`, `netconf: "cniVersion": expected a string, got number 1.0`},
		{"two at once", `{"mtu":"x","ipam":{"type":[]}}`, `netconf: "mtu": expected a number, got string "x"; "ipam.type": expected a string, got a list`},
		{"not an object", `[1]`, `netconf: not a JSON object`},
		{"not JSON", `{"mtu":`, `netconf: not a JSON object`},
		{"null", `null`, `netconf: not a JSON object`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.conf))
			if err == nil {
				t.Fatalf("Parse(%s) succeeded, want error %q", tt.conf, tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Parse(%s):\n got %q\nwant %q", tt.conf, err.Error(), tt.want)
			}
		})
	}
}

func TestParseIgnoresUnknownKeysOfAnyType(t *testing.T) {
	_, err := Parse([]byte(`{"name":"n","mode":7,"vxlan_vni":"x","feature_control":"nonsense","dataplane_options":[1],"ipam":{"type":"calico-ipam","subnet":1,"whatever":{}}}`))
	if err != nil {
		t.Fatalf("unknown keys must be ignored: %v", err)
	}
}

func TestAssignBooleanSpellings(t *testing.T) {
	for conf, want := range map[string][2]bool{
		`{"ipam":{"assign_ipv4":"false","assign_ipv6":"true"}}`: {false, true},
		`{"ipam":{"assign_ipv4":false,"assign_ipv6":true}}`:     {false, true},
		`{"ipam":{"assign_ipv4":"TRUE","assign_ipv6":"0"}}`:     {true, false},
	} {
		c, err := Parse([]byte(conf))
		if err != nil {
			t.Fatalf("%s: %v", conf, err)
		}
		if got := [2]bool{c.IPAM.AssignIPv4, c.IPAM.AssignIPv6}; got != want {
			t.Errorf("%s: got %v want %v", conf, got, want)
		}
	}
}

func TestExpectedNodename(t *testing.T) {
	files := map[string]string{"/var/lib/calico/nodename": "node-from-file\n", "/other": "other-node"}
	read := func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, fs.ErrNotExist
	}
	broken := func(string) ([]byte, error) { return nil, errors.New("permission denied") }
	tests := []struct {
		conf       string
		read       func(string) ([]byte, error)
		want, from string
		wantErr    bool
	}{
		{`{"nodename":"n1"}`, read, "n1", `netconf "nodename"`, false},
		{`{"kubernetes":{"node_name":"n2"}}`, read, "n2", `netconf "nodename"`, false},
		{`{}`, read, "node-from-file", "nodename file /var/lib/calico/nodename", false},
		{`{"nodename_file":"/other"}`, read, "other-node", "nodename file /other", false},
		{`{"nodename_file":"/missing"}`, read, "", "", false},
		{`{}`, broken, "", "", true},
		{`{"nodename":"n1"}`, broken, "n1", `netconf "nodename"`, false},
	}
	for _, tt := range tests {
		c, err := Parse([]byte(tt.conf))
		if err != nil {
			t.Fatal(err)
		}
		got, from, err := c.ExpectedNodename(tt.read)
		if (err != nil) != tt.wantErr || got != tt.want || from != tt.from {
			t.Errorf("%s: got (%q, %q, %v), want (%q, %q, err=%t)", tt.conf, got, from, err, tt.want, tt.from, tt.wantErr)
		}
	}
}
