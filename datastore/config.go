package datastore

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Datastore types, spelled as Calico's DATASTORE_TYPE and datastoreType.
const (
	TypeEtcdV3     = "etcdv3"
	TypeKubernetes = "kubernetes"
)

// Defaults applied by ConfigFromEnv and LoadAPIConfig, and by the etcd
// backend when a duration is zero.
const (
	// DefaultEtcdEndpoint is Calico's default when ETCD_ENDPOINTS is unset.
	DefaultEtcdEndpoint = "http://127.0.0.1:2379"
	// DefaultDialTimeout bounds establishing a connection to one endpoint.
	DefaultDialTimeout = 10 * time.Second
	// DefaultRequestTimeout bounds every datastore request, so that an
	// unreachable cluster is an error and never a hang.
	DefaultRequestTimeout = 10 * time.Second
)

// Config says which datastore to use and how to reach it: Calico's
// CalicoAPIConfig spec, reduced to what Tabby supports.
type Config struct {
	Type       string // TypeEtcdV3 or TypeKubernetes
	Etcd       EtcdConfig
	Kubeconfig string
}

// EtcdConfig is how to reach an etcd v3 cluster.
type EtcdConfig struct {
	Endpoints  []string // URLs: http://host:port, https://host:port, unix://path
	CACertFile string   // PEM bundle that verifies the servers (system roots when empty)
	CertFile   string   // client certificate; needs KeyFile
	KeyFile    string
	// DialTimeout bounds connecting; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// RequestTimeout bounds every request; 0 means DefaultRequestTimeout.
	RequestTimeout time.Duration
}

// Validate checks what can be checked without touching the network or the
// file system: the type, the endpoint URLs and that a client certificate comes
// with its key.
func (c Config) Validate() error {
	switch c.Type {
	case TypeEtcdV3:
		return c.Etcd.Validate()
	case TypeKubernetes:
		return nil
	case "":
		return fmt.Errorf("datastore type is empty: use %q or %q", TypeEtcdV3, TypeKubernetes)
	default:
		return fmt.Errorf("datastore type %q is not known: use %q or %q", c.Type, TypeEtcdV3, TypeKubernetes)
	}
}

// Validate checks the endpoints and the TLS file pairing.
func (c EtcdConfig) Validate() error {
	if len(c.Endpoints) == 0 {
		return errors.New("no etcd endpoints")
	}
	for _, ep := range c.Endpoints {
		if err := validateEndpoint(ep); err != nil {
			return err
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("etcd client certificate and key go together: set both the cert file and the key file, or neither")
	}
	if c.DialTimeout < 0 || c.RequestTimeout < 0 {
		return errors.New("etcd timeouts must not be negative")
	}
	return nil
}

// ParseEtcdEndpoints splits Calico's comma-separated endpoint list and checks
// every URL; empty items (a trailing comma) are ignored. An empty list gives
// DefaultEtcdEndpoint.
func ParseEtcdEndpoints(s string) ([]string, error) {
	var out []string
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if err := validateEndpoint(item); err != nil {
			return nil, err
		}
		out = append(out, item)
	}
	if len(out) == 0 {
		out = []string{DefaultEtcdEndpoint}
	}
	return out, nil
}

func validateEndpoint(ep string) error {
	if !strings.Contains(ep, "://") {
		return fmt.Errorf("etcd endpoint %q has no scheme: use http://host:port, https://host:port or unix:///path", ep)
	}
	u, err := url.Parse(ep)
	if err != nil {
		return fmt.Errorf("etcd endpoint %q is not a URL: %w", ep, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return fmt.Errorf("etcd endpoint %q has no host: use scheme://host:port", ep)
		}
		if u.Hostname() == "" {
			return fmt.Errorf("etcd endpoint %q has no host name", ep)
		}
	case "unix", "unixs":
		// etcd accepts unix://name (a socket file) and unix:///abs/path.
		if u.Host == "" && u.Path == "" {
			return fmt.Errorf("etcd endpoint %q names no socket", ep)
		}
	default:
		return fmt.Errorf("etcd endpoint %q has scheme %q: use http, https or unix", ep, u.Scheme)
	}
	return nil
}

// ConfigFromEnv reads the datastore settings the way calicoctl and calico-node
// do: DATASTORE_TYPE (default etcdv3 until Tabby has a Kubernetes backend),
// ETCD_ENDPOINTS, ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE and
// KUBECONFIG. As in Calico, each may also be given with a CALICO_ prefix,
// which wins. getenv is os.Getenv in production.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	get := func(name string) string {
		if v := strings.TrimSpace(getenv("CALICO_" + name)); v != "" {
			return v
		}
		return strings.TrimSpace(getenv(name))
	}
	cfg := Config{
		Type: get("DATASTORE_TYPE"),
		Etcd: EtcdConfig{
			CACertFile: get("ETCD_CA_CERT_FILE"),
			CertFile:   get("ETCD_CERT_FILE"),
			KeyFile:    get("ETCD_KEY_FILE"),
		},
		Kubeconfig: get("KUBECONFIG"),
	}
	eps, err := ParseEtcdEndpoints(get("ETCD_ENDPOINTS"))
	if err != nil {
		return Config{}, fmt.Errorf("ETCD_ENDPOINTS: %w", err)
	}
	cfg.Etcd.Endpoints = eps
	if err := finish(&cfg); err != nil {
		return Config{}, fmt.Errorf("datastore configuration from the environment: %w", err)
	}
	return cfg, nil
}

// APIConfigKind and APIConfigVersion identify a calicoctl configuration file.
const (
	APIConfigKind    = "CalicoAPIConfig"
	APIConfigVersion = "projectcalico.org/v3"
)

// apiConfigFile is the shape of Calico's calicoctl.cfg; decoding is strict so
// a misspelt key is an error rather than a silently ignored setting.
type apiConfigFile struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		DatastoreType  string `json:"datastoreType"`
		EtcdEndpoints  string `json:"etcdEndpoints"`
		EtcdKeyFile    string `json:"etcdKeyFile"`
		EtcdCertFile   string `json:"etcdCertFile"`
		EtcdCACertFile string `json:"etcdCACertFile"`
		Kubeconfig     string `json:"kubeconfig"`
	} `json:"spec"`
}

// LoadAPIConfig reads a calicoctl configuration file (apiVersion
// projectcalico.org/v3, kind CalicoAPIConfig). Unknown fields are errors that
// name the field.
func LoadAPIConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read datastore configuration: %w", err)
	}
	cfg, err := ParseAPIConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("datastore configuration %s: %w", path, err)
	}
	return cfg, nil
}

// ParseAPIConfig is LoadAPIConfig on bytes.
func ParseAPIConfig(data []byte) (Config, error) {
	var f apiConfigFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return Config{}, err
	}
	if f.APIVersion != APIConfigVersion {
		return Config{}, fmt.Errorf("apiVersion %q is not supported: use %q", f.APIVersion, APIConfigVersion)
	}
	if f.Kind != APIConfigKind {
		return Config{}, fmt.Errorf("kind %q is not supported: use %q", f.Kind, APIConfigKind)
	}
	s := f.Spec
	cfg := Config{
		Type: strings.TrimSpace(s.DatastoreType),
		Etcd: EtcdConfig{
			CACertFile: s.EtcdCACertFile,
			CertFile:   s.EtcdCertFile,
			KeyFile:    s.EtcdKeyFile,
		},
		Kubeconfig: s.Kubeconfig,
	}
	eps, err := ParseEtcdEndpoints(s.EtcdEndpoints)
	if err != nil {
		return Config{}, fmt.Errorf("spec.etcdEndpoints: %w", err)
	}
	cfg.Etcd.Endpoints = eps
	if err := finish(&cfg); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// finish applies the default type and validates.
func finish(cfg *Config) error {
	if cfg.Type == "" {
		cfg.Type = TypeEtcdV3
	}
	return cfg.Validate()
}
