package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/node/autodetect"
)

// Defaults that differ from "unset".
const (
	DefaultAgentSocket     = "/var/run/calico/agent.sock"
	DefaultNodenameFile    = "/var/lib/calico/nodename"
	DefaultHealthHost      = "localhost"
	DefaultHealthPort      = 9099
	DefaultMetricsPort     = 9091
	DefaultRouteRefresh    = 90 * time.Second
	DefaultEmbeddedEtcd    = "127.0.0.1:2379"
	DefaultNetworkBackend  = "bird"
	DefaultIPv4PoolCIDR    = "192.168.0.0/16"
	DefaultIPv4PoolName    = "default-ipv4-ippool"
	DefaultIPv6PoolName    = "default-ipv6-ippool"
	DefaultIPv4BlockSize   = 26
	DefaultIPv6BlockSize   = 122
	defaultIPv4NATOutgoing = true
	defaultIPv6NATOutgoing = false
)

// Config is everything calico-node reads from its environment.
type Config struct {
	NodeName string
	// K8sNodeRef (CALICO_K8S_NODE_REF) is recorded in Node.spec.orchRefs.
	K8sNodeRef string

	Datastore        datastore.Config
	WaitForDatastore bool
	// EmbeddedEtcdDir (TABBY_EMBEDDED_ETCD_DIR) makes calico-node run its own
	// single-member etcd with its data there, listening on
	// EmbeddedEtcdAddress; Datastore then points at it.
	EmbeddedEtcdDir     string
	EmbeddedEtcdAddress string

	// NetworkingBackend is CALICO_NETWORKING_BACKEND: "bird" (BGP, the
	// default), "vxlan" or "none" (policy only: no node address is needed).
	NetworkingBackend string

	IPv4 Address
	IPv6 Address
	// AS (AS) is this node's AS number; nil keeps what the Node has.
	AS                 *v3.ASNumber
	DisableNodeIPCheck bool

	Pools Pools

	AgentSocket string
	// NodenameFile is where the node name is written for the CNI plugin
	// (TABBY_NODENAME_FILE; "none" disables).
	NodenameFile string

	Health  Endpoint
	Metrics Metrics

	LogLevel slog.Level

	// Felix settings read from FELIX_* variables.
	RouteRefreshInterval time.Duration
	IPv6Support          bool   // FELIX_IPV6SUPPORT (default true)
	IPForwarding         string // FELIX_IPFORWARDING: Enabled (default) or Disabled
}

// AddressMode is how one family's node address is chosen (IP / IP6).
type AddressMode int

const (
	// AddressUnset: IP is empty. IPv4 is autodetected when the Node has no
	// address yet or IP_AUTODETECTION_METHOD is set, else the Node's address
	// is kept; IPv6 keeps what the Node has.
	AddressUnset AddressMode = iota
	AddressAutodetect
	// AddressNone keeps what the Node has and detects nothing.
	AddressNone
	AddressStatic
)

// Address is the configuration of one family's node address.
type Address struct {
	Family    int    // 4 or 6
	Env       string // "IP" or "IP6"
	MethodEnv string // "IP_AUTODETECTION_METHOD" or "IP6_AUTODETECTION_METHOD"
	Raw       string // the value of Env as given
	Mode      AddressMode
	// Static is the configured address; StaticHasPrefix says whether a
	// prefix length was given (without one, startup takes the length from
	// the interface that has the address, or /32 (/128)).
	Static          netip.Prefix
	StaticHasPrefix bool
	Method          autodetect.Method
	// MethodSet: the method variable was given (not the first-found default).
	MethodSet bool
}

// Pools is the default pool configuration.
type Pools struct {
	NoDefaultPools bool
	IPv4           *Pool // nil: create no IPv4 pool
	IPv6           *Pool // nil: create no IPv6 pool (only created when CALICO_IPV6POOL_CIDR is set)
}

// Pool is a default IP pool to create when no pool of its family exists.
type Pool struct {
	Name             string
	CIDR             netip.Prefix
	BlockSize        int
	IPIPMode         v3.EncapMode
	VXLANMode        v3.EncapMode
	NATOutgoing      bool
	NodeSelector     string
	DisableBGPExport bool
	// Defaulted is true when the CIDR was not given (CALICO_IPV4POOL_CIDR
	// unset), so startup may move it off a range the host already uses.
	Defaulted bool
}

// Endpoint is an HTTP listener that may be switched off.
type Endpoint struct {
	Enabled bool
	Host    string // "" = every address
	Port    int    // 0 = a free port (for tests)
}

// Addr is host:port for net.Listen.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// Metrics is the Prometheus endpoint.
type Metrics struct {
	Endpoint
	GoMetrics      bool
	ProcessMetrics bool
}

// FromEnv reads the configuration. hostname is os.Hostname in production.
// Every bad value is reported (joined), each starting with NAME=value.
func FromEnv(getenv func(string) string, hostname func() (string, error)) (Config, error) {
	r := &reader{getenv: getenv}
	var c Config

	c.NodeName = r.nodeName(hostname)
	c.K8sNodeRef = r.str("CALICO_K8S_NODE_REF")

	if ds, err := datastore.ConfigFromEnv(getenv); err != nil {
		r.errs = append(r.errs, err)
	} else {
		c.Datastore = ds
	}
	c.WaitForDatastore = r.boolean("WAIT_FOR_DATASTORE", false)
	c.EmbeddedEtcdDir = r.str("TABBY_EMBEDDED_ETCD_DIR")
	if c.EmbeddedEtcdDir != "" {
		c.EmbeddedEtcdAddress = r.embeddedAddress(c.Datastore)
	}

	c.NetworkingBackend = strings.ToLower(r.str("CALICO_NETWORKING_BACKEND"))
	switch c.NetworkingBackend {
	case "":
		c.NetworkingBackend = DefaultNetworkBackend
	case "bird", "vxlan", "none":
	default:
		r.fail("CALICO_NETWORKING_BACKEND", "not a networking backend: use bird, vxlan or none")
	}

	c.IPv4 = r.address(4, "IP", "IP_AUTODETECTION_METHOD")
	c.IPv6 = r.address(6, "IP6", "IP6_AUTODETECTION_METHOD")
	if s := r.str("AS"); s != "" {
		if as, err := v3.ParseASNumber(s); err != nil {
			r.failErr("AS", err)
		} else {
			c.AS = &as
		}
	}
	c.DisableNodeIPCheck = r.boolean("DISABLE_NODE_IP_CHECK", false)

	c.Pools = r.pools()

	c.AgentSocket = r.str("CALICO_AGENT_SOCKET")
	if c.AgentSocket == "" {
		c.AgentSocket = DefaultAgentSocket
	} else if !strings.HasPrefix(c.AgentSocket, "/") {
		r.fail("CALICO_AGENT_SOCKET", "must be an absolute path")
	}
	c.NodenameFile = r.str("TABBY_NODENAME_FILE")
	switch {
	case c.NodenameFile == "":
		c.NodenameFile = DefaultNodenameFile
	case c.NodenameFile == "none":
		c.NodenameFile = ""
	case !strings.HasPrefix(c.NodenameFile, "/"):
		r.fail("TABBY_NODENAME_FILE", "must be an absolute path (or none)")
	}

	c.Health = r.health()
	c.Metrics = Metrics{
		Endpoint: Endpoint{
			Enabled: r.boolean("FELIX_PROMETHEUSMETRICSENABLED", false),
			Host:    r.str("FELIX_PROMETHEUSMETRICSHOST"),
			Port:    r.port("FELIX_PROMETHEUSMETRICSPORT", DefaultMetricsPort),
		},
		GoMetrics:      r.boolean("FELIX_PROMETHEUSGOMETRICSENABLED", true),
		ProcessMetrics: r.boolean("FELIX_PROMETHEUSPROCESSMETRICSENABLED", true),
	}

	c.LogLevel = r.logLevel()
	c.RouteRefreshInterval = r.seconds("FELIX_ROUTEREFRESHINTERVAL", DefaultRouteRefresh)
	c.IPv6Support = r.boolean("FELIX_IPV6SUPPORT", true)
	switch strings.ToLower(r.str("FELIX_IPFORWARDING")) {
	case "", "enabled":
		c.IPForwarding = "Enabled"
	case "disabled":
		c.IPForwarding = "Disabled"
	default:
		r.fail("FELIX_IPFORWARDING", "use Enabled or Disabled")
	}

	if len(r.errs) > 0 {
		return Config{}, errors.Join(r.errs...)
	}
	return c, nil
}

// Health is on by default, as calico.yaml sets FELIX_HEALTHENABLED=true,
// and on localhost only, as Felix; metrics are off, as in Calico.
func (r *reader) health() Endpoint {
	return Endpoint{
		Enabled: r.boolean("FELIX_HEALTHENABLED", true),
		Host:    r.strDefault("FELIX_HEALTHHOST", DefaultHealthHost),
		Port:    r.port("FELIX_HEALTHPORT", DefaultHealthPort),
	}
}

// HealthFromEnv reads only the health endpoint (FELIX_HEALTHENABLED,
// FELIX_HEALTHHOST, FELIX_HEALTHPORT): what the probe commands
// (calico-node -felix-ready) need, whatever else the environment holds.
func HealthFromEnv(getenv func(string) string) (Endpoint, error) {
	r := &reader{getenv: getenv}
	e := r.health()
	return e, errors.Join(r.errs...)
}

// reader collects every problem instead of stopping at the first, so that
// one restart shows the operator everything to fix.
type reader struct {
	getenv func(string) string
	errs   []error
}

func (r *reader) str(name string) string { return strings.TrimSpace(r.getenv(name)) }

func (r *reader) strDefault(name, def string) string {
	if v := r.str(name); v != "" {
		return v
	}
	return def
}

func (r *reader) fail(name, reason string) {
	r.errs = append(r.errs, fmt.Errorf("%s=%s: %s", name, r.str(name), reason))
}

func (r *reader) failErr(name string, err error) {
	r.errs = append(r.errs, fmt.Errorf("%s=%s: %w", name, r.str(name), err))
}

// boolean accepts the spellings Calico and Felix accept; anything else is
// refused rather than silently read as true or false.
func (r *reader) boolean(name string, def bool) bool {
	v := strings.ToLower(r.str(name))
	switch v {
	case "":
		return def
	case "true", "t", "yes", "y", "1", "on":
		return true
	case "false", "f", "no", "n", "0", "off":
		return false
	}
	r.fail(name, "not a boolean: use true or false")
	return def
}

func (r *reader) port(name string, def int) int {
	v := r.str(name)
	if v == "" {
		return def
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 0 || p > 65535 {
		r.fail(name, "not a port number: use 1-65535 (0 picks a free port)")
		return def
	}
	return p
}

// seconds reads a Felix duration: a number of seconds ("90", "0.5"), or a
// Go duration ("90s") as a convenience.
func (r *reader) seconds(name string, def time.Duration) time.Duration {
	v := r.str(name)
	if v == "" {
		return def
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
		return time.Duration(f * float64(time.Second))
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return d
	}
	r.fail(name, "not a duration: give seconds, e.g. 90")
	return def
}

// nodeName is Calico's rule: NODENAME, else HOSTNAME, else the host name
// (lower-cased, as Kubernetes lower-cases node names).
func (r *reader) nodeName(hostname func() (string, error)) string {
	name, env := r.str("NODENAME"), "NODENAME"
	if name == "" {
		name, env = r.str("HOSTNAME"), "HOSTNAME"
	}
	if name == "" {
		h, err := hostname()
		if err != nil {
			r.errs = append(r.errs, fmt.Errorf("NODENAME is not set and the host name cannot be read: %w", err))
			return ""
		}
		name = strings.ToLower(strings.TrimSpace(h))
		if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
			r.errs = append(r.errs, fmt.Errorf("NODENAME is not set and the host name %q is not a valid node name (%s): set NODENAME", name, strings.Join(msgs, "; ")))
		}
		return name
	}
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		r.fail(env, "not a valid node name: "+strings.Join(msgs, "; "))
	}
	return name
}

// embeddedAddress is where the embedded etcd listens: the host:port of
// ETCD_ENDPOINTS (default http://127.0.0.1:2379), which must be one
// loopback http URL, so that calicoctl with the same environment finds it.
func (r *reader) embeddedAddress(ds datastore.Config) string {
	eps := ds.Etcd.Endpoints
	if len(eps) == 0 {
		return DefaultEmbeddedEtcd
	}
	u, err := url.Parse(eps[0])
	if len(eps) != 1 || err != nil || u.Scheme != "http" {
		r.errs = append(r.errs, fmt.Errorf("TABBY_EMBEDDED_ETCD_DIR is set, so ETCD_ENDPOINTS must be one http:// loopback URL for the embedded etcd to listen on (got %q)", strings.Join(eps, ",")))
		return ""
	}
	host := u.Hostname()
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		r.errs = append(r.errs, fmt.Errorf("TABBY_EMBEDDED_ETCD_DIR is set, so ETCD_ENDPOINTS must be a loopback address for the embedded etcd (got %q)", eps[0]))
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "2379"
	}
	return net.JoinHostPort(host, port)
}

func (r *reader) logLevel() slog.Level {
	for _, name := range []string{"CALICO_LOG_LEVEL", "FELIX_LOGSEVERITYSCREEN"} {
		v := strings.ToLower(r.str(name))
		switch v {
		case "":
			continue
		case "trace", "debug":
			return slog.LevelDebug
		case "info":
			return slog.LevelInfo
		case "warning", "warn":
			return slog.LevelWarn
		case "error", "fatal", "panic":
			return slog.LevelError
		}
		r.fail(name, "not a log level: use debug, info, warning or error")
		return slog.LevelInfo
	}
	return slog.LevelInfo
}

// address reads IP / IP6 and its autodetection method. The method is
// checked even when it will not be used, so that a typo does not wait for
// the day the address is autodetected to surface.
func (r *reader) address(family int, env, methodEnv string) Address {
	a := Address{Family: family, Env: env, MethodEnv: methodEnv, Raw: r.str(env), MethodSet: r.str(methodEnv) != ""}
	if m, err := autodetect.ParseMethod(r.str(methodEnv)); err != nil {
		r.failErr(methodEnv, err)
	} else {
		a.Method = m
	}
	fam, other, otherEnv := "IPv4", "IPv6", "IP6"
	if family == 6 {
		fam, other, otherEnv = "IPv6", "IPv4", "IP"
	}
	switch strings.ToLower(a.Raw) {
	case "":
		a.Mode = AddressUnset
		return a
	case "autodetect":
		a.Mode = AddressAutodetect
		return a
	case "none":
		a.Mode = AddressNone
		return a
	}
	a.Mode = AddressStatic
	var addr netip.Addr
	if strings.Contains(a.Raw, "/") {
		p, err := netip.ParsePrefix(a.Raw)
		if err != nil {
			r.fail(env, fmt.Sprintf("not an %s address or address/prefix-length (or autodetect, none)", fam))
			return a
		}
		addr, a.Static, a.StaticHasPrefix = p.Addr(), p, true
	} else {
		var err error
		if addr, err = netip.ParseAddr(a.Raw); err != nil {
			r.fail(env, fmt.Sprintf("not an %s address or address/prefix-length (or autodetect, none)", fam))
			return a
		}
		a.Static = netip.PrefixFrom(addr, addr.BitLen())
	}
	if addr.Zone() != "" || (family == 4) != addr.Is4() || addr.Is4In6() {
		r.fail(env, fmt.Sprintf("an %s address: %s takes %s, %s takes %s", other, env, fam, otherEnv, other))
		return a
	}
	if !addr.IsGlobalUnicast() {
		r.fail(env, "not a unicast host address (loopback, link-local, multicast and unspecified addresses cannot be a node address)")
	}
	return a
}
