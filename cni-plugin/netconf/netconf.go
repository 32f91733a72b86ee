package netconf

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Defaults, spelled as Calico's.
const (
	// DefaultAgentSocket is calico-node's CALICO_AGENT_SOCKET default.
	DefaultAgentSocket = "/var/run/calico/agent.sock"
	// DefaultNodenameFile is where calico-node writes its node name.
	DefaultNodenameFile = "/var/lib/calico/nodename"
	// IPAMTypeCalico is the IPAM plugin that allocates through the agent.
	IPAMTypeCalico = "calico-ipam"
	// MinMTU is the smallest MTU IPv4 allows (RFC 791); IPv6 needs 1280.
	MinMTU = 68
	// MaxMTU is the largest MTU a veth accepts.
	MaxMTU = 65535
)

// NetConf is the part of Calico's CNI network configuration that Tabby's
// calico and calico-ipam plugins use. Keys Calico has and Tabby does not use
// (etcd TLS files, feature_control, container_settings, ...) are ignored.
type NetConf struct {
	CNIVersion string
	Name       string // the network name; it prefixes the IPAM handle
	Type       string
	IPAM       IPAM

	// MTU of the pod's interface; 0 means "ask calico-node".
	MTU int

	// Nodename names this node; empty means "read NodenameFile, else take
	// the agent's name". Kubernetes.NodeName is an older spelling.
	Nodename             string
	NodenameFile         string
	NodenameFileOptional bool

	// DatastoreType and EtcdEndpoints are accepted for compatibility with
	// calico.yaml; the plugins never reach the datastore themselves (the
	// agent does, ARCHITECTURE.md decision 3).
	DatastoreType string
	EtcdEndpoints string

	LogLevel        string
	LogFilePath     string
	LogFileMaxSize  int // MB
	LogFileMaxAge   int // days
	LogFileMaxCount int

	Policy     Policy
	Kubernetes Kubernetes

	// AgentSocket is the calico-node agent's unix socket.
	AgentSocket string
}

// IPAM is the "ipam" section.
type IPAM struct {
	Type       string
	AssignIPv4 bool // Calico's default: true
	AssignIPv6 bool // Calico's default: false
	IPv4Pools  []string
	IPv6Pools  []string
}

// Policy is the "policy" section ({"type": "k8s"} in calico.yaml).
type Policy struct {
	Type string
}

// Kubernetes is the "kubernetes" section.
type Kubernetes struct {
	Kubeconfig string
	K8sAPIRoot string
	NodeName   string
}

// logLevels maps Calico's (logrus') level names to the four slog knows.
var logLevels = map[string]string{
	"trace": "debug", "debug": "debug", "info": "info",
	"warn": "warn", "warning": "warn",
	"error": "error", "fatal": "error", "panic": "error",
}

// Parse reads and checks a netconf. Every key it knows must have the right
// type (the error names the key: `"mtu": expected a number, got string
// "abc"`); unknown keys are ignored. The error lists every bad key at once.
func Parse(stdin []byte) (*NetConf, error) {
	f, err := newFields(stdin)
	if err != nil {
		return nil, fmt.Errorf("netconf: not a JSON object: %w", err)
	}
	c := &NetConf{
		AgentSocket:  DefaultAgentSocket,
		NodenameFile: DefaultNodenameFile,
		IPAM:         IPAM{AssignIPv4: true},
	}
	f.str("cniVersion", &c.CNIVersion)
	f.str("name", &c.Name)
	f.str("type", &c.Type)

	if f.integer("mtu", &c.MTU) && c.MTU != 0 && (c.MTU < MinMTU || c.MTU > MaxMTU) {
		f.fail("mtu", "%d is out of range: use %d to %d, or 0 to take the MTU from calico-node", c.MTU, MinMTU, MaxMTU)
	}
	f.str("nodename", &c.Nodename)
	f.str("nodename_file", &c.NodenameFile)
	f.boolean("nodename_file_optional", &c.NodenameFileOptional)
	f.str("datastore_type", &c.DatastoreType)
	f.str("etcd_endpoints", &c.EtcdEndpoints)

	if f.str("log_level", &c.LogLevel) {
		if _, ok := logLevels[strings.ToLower(strings.TrimSpace(c.LogLevel))]; !ok {
			f.fail("log_level", "%q is not a log level: use debug, info, warning or error", c.LogLevel)
		}
	}
	f.str("log_file_path", &c.LogFilePath)
	f.integer("log_file_max_size", &c.LogFileMaxSize)
	f.integer("log_file_max_age", &c.LogFileMaxAge)
	f.integer("log_file_max_count", &c.LogFileMaxCount)

	if p := f.object("policy"); p != nil {
		p.str("type", &c.Policy.Type)
	}
	if k := f.object("kubernetes"); k != nil {
		k.str("kubeconfig", &c.Kubernetes.Kubeconfig)
		k.str("k8s_api_root", &c.Kubernetes.K8sAPIRoot)
		k.str("node_name", &c.Kubernetes.NodeName)
	}
	if c.Nodename == "" {
		c.Nodename = c.Kubernetes.NodeName
	}

	if f.str("agent_socket", &c.AgentSocket) && !filepath.IsAbs(c.AgentSocket) {
		f.fail("agent_socket", "%q is not an absolute path", c.AgentSocket)
	}
	if f.has("nodename_file") && !filepath.IsAbs(c.NodenameFile) {
		f.fail("nodename_file", "%q is not an absolute path", c.NodenameFile)
	}

	// Calico reads the pools from the ipam section; a top-level list is
	// accepted as well (the issue lists it beside the other keys) and the
	// ipam section wins.
	f.strList("ipv4_pools", &c.IPAM.IPv4Pools)
	f.strList("ipv6_pools", &c.IPAM.IPv6Pools)
	if ip := f.object("ipam"); ip != nil {
		ip.str("type", &c.IPAM.Type)
		ip.boolOrString("assign_ipv4", &c.IPAM.AssignIPv4)
		ip.boolOrString("assign_ipv6", &c.IPAM.AssignIPv6)
		ip.strList("ipv4_pools", &c.IPAM.IPv4Pools)
		ip.strList("ipv6_pools", &c.IPAM.IPv6Pools)
	}
	// The runtime's own keys: checked so that a broken prevResult or
	// attachment list is reported by name rather than as a decoding panic.
	f.object("prevResult")
	f.object("runtimeConfig")
	f.strListOfObjects(ValidAttachmentsKey)

	if len(*f.errs) > 0 {
		return nil, errors.New("netconf: " + strings.Join(*f.errs, "; "))
	}
	return c, nil
}

// SlogLevel is the log level as slog spells it ("info" when unset).
func (c *NetConf) SlogLevel() string {
	if l, ok := logLevels[strings.ToLower(strings.TrimSpace(c.LogLevel))]; ok {
		return l
	}
	return "info"
}

// Pools returns the pools to pass to the agent (nil means "automatic").
func (i IPAM) Pools() (v4, v6 []string) {
	return trimAll(i.IPv4Pools), trimAll(i.IPv6Pools)
}

func trimAll(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ValidAttachmentsKey is the CNI 1.1 GC key listing attachments to keep.
const ValidAttachmentsKey = "cni.dev/valid-attachments"

// strListOfObjects only checks that key, when present, is a list of objects.
func (f *fields) strListOfObjects(key string) {
	v := f.raw(key)
	if v == nil {
		return
	}
	if v[0] != '[' {
		f.wrongType(key, "a list of objects", v)
	}
}
