package datastore

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigFromEnv(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want Config
	}{
		{"defaults", nil, Config{Type: TypeEtcdV3, Etcd: EtcdConfig{Endpoints: []string{DefaultEtcdEndpoint}}}},
		{"etcd with TLS", map[string]string{
			"DATASTORE_TYPE":    "etcdv3",
			"ETCD_ENDPOINTS":    "https://10.0.0.1:2379, https://10.0.0.2:2379,",
			"ETCD_CA_CERT_FILE": "/etc/calico/ca.pem",
			"ETCD_CERT_FILE":    "/etc/calico/cert.pem",
			"ETCD_KEY_FILE":     "/etc/calico/key.pem",
		}, Config{Type: TypeEtcdV3, Etcd: EtcdConfig{
			Endpoints:  []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"},
			CACertFile: "/etc/calico/ca.pem", CertFile: "/etc/calico/cert.pem", KeyFile: "/etc/calico/key.pem",
		}}},
		{"unix socket and IPv6", map[string]string{"ETCD_ENDPOINTS": "unix:///run/etcd.sock,http://[fd00::1]:2379"},
			Config{Type: TypeEtcdV3, Etcd: EtcdConfig{Endpoints: []string{"unix:///run/etcd.sock", "http://[fd00::1]:2379"}}}},
		{"kubernetes parses (and is refused when opened)", map[string]string{"DATASTORE_TYPE": "kubernetes", "KUBECONFIG": "/root/.kube/config"},
			Config{Type: TypeKubernetes, Etcd: EtcdConfig{Endpoints: []string{DefaultEtcdEndpoint}}, Kubeconfig: "/root/.kube/config"}},
		{"CALICO_ prefix wins", map[string]string{"DATASTORE_TYPE": "kubernetes", "CALICO_DATASTORE_TYPE": "etcdv3", "CALICO_ETCD_ENDPOINTS": "http://10.0.0.9:2379"},
			Config{Type: TypeEtcdV3, Etcd: EtcdConfig{Endpoints: []string{"http://10.0.0.9:2379"}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ConfigFromEnv(envOf(c.env))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestConfigFromEnvErrors(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string // in the error
	}{
		{"unknown type", map[string]string{"DATASTORE_TYPE": "consul"}, `"consul"`},
		{"no scheme", map[string]string{"ETCD_ENDPOINTS": "http://10.0.0.1:2379,10.0.0.2:2379"}, `"10.0.0.2:2379"`},
		{"bad scheme", map[string]string{"ETCD_ENDPOINTS": "ftp://10.0.0.1:2379"}, `"ftp"`},
		{"no host", map[string]string{"ETCD_ENDPOINTS": "http://:2379"}, `"http://:2379"`},
		{"no host at all", map[string]string{"ETCD_ENDPOINTS": "https://"}, `"https://"`},
		{"not a URL", map[string]string{"ETCD_ENDPOINTS": "http://10.0.0.1:2379/%zz"}, `%zz`},
		{"cert without key", map[string]string{"ETCD_CERT_FILE": "/c.pem"}, "key"},
		{"key without cert", map[string]string{"ETCD_KEY_FILE": "/k.pem"}, "cert"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ConfigFromEnv(envOf(c.env))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %s", err, c.want)
			}
		})
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "calicoctl.cfg")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadAPIConfig(t *testing.T) {
	p := writeFile(t, `apiVersion: projectcalico.org/v3
kind: CalicoAPIConfig
metadata: {}
spec:
  datastoreType: etcdv3
  etcdEndpoints: http://127.0.0.1:2379,http://10.0.0.2:2379
  etcdKeyFile: /path/key.pem
  etcdCertFile: /path/cert.pem
  etcdCACertFile: /path/ca.pem
  kubeconfig: /path
`)
	got, err := LoadAPIConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Type: TypeEtcdV3, Kubeconfig: "/path", Etcd: EtcdConfig{
		Endpoints: []string{"http://127.0.0.1:2379", "http://10.0.0.2:2379"},
		KeyFile:   "/path/key.pem", CertFile: "/path/cert.pem", CACertFile: "/path/ca.pem",
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}

	minimal, err := LoadAPIConfig(writeFile(t, "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\n"))
	if err != nil {
		t.Fatal(err)
	}
	if minimal.Type != TypeEtcdV3 || !reflect.DeepEqual(minimal.Etcd.Endpoints, []string{DefaultEtcdEndpoint}) {
		t.Errorf("minimal file = %+v", minimal)
	}
}

func TestLoadAPIConfigErrors(t *testing.T) {
	const head = "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\n"
	cases := []struct {
		name, content, want string
	}{
		{"unknown spec field", head + "spec:\n  etcdEndpoint: http://127.0.0.1:2379\n", `"etcdEndpoint"`},
		{"unknown top-level field", head + "extra: 1\nspec: {}\n", `"extra"`},
		{"wrong kind", "apiVersion: projectcalico.org/v3\nkind: IPPool\n", `"IPPool"`},
		{"wrong apiVersion", "apiVersion: v1\nkind: CalicoAPIConfig\n", `"v1"`},
		{"bad endpoint", head + "spec:\n  etcdEndpoints: http://127.0.0.1:2379,127.0.0.2\n", `"127.0.0.2"`},
		{"bad type", head + "spec:\n  datastoreType: etcdv2\n", `"etcdv2"`},
		{"wrong value type", head + "spec:\n  etcdEndpoints: [a, b]\n", "etcdEndpoints"},
		{"not YAML", "{{{", "yaml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeFile(t, c.content)
			_, err := LoadAPIConfig(p)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not mention %s and the file", err, c.want)
			}
		})
	}
	if _, err := LoadAPIConfig(filepath.Join(t.TempDir(), "missing.cfg")); err == nil || !strings.Contains(err.Error(), "missing.cfg") {
		t.Errorf("missing file: %v", err)
	}
}
