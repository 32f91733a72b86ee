package config

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	v3 "github.com/tabbynet/tabby/api/v3"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func fixedHost(name string) func() (string, error) {
	return func() (string, error) { return name, nil }
}

func TestDefaults(t *testing.T) {
	c, err := FromEnv(env(), fixedHost("Host-1"))
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeName != "host-1" {
		t.Errorf("node name %q, want the lower-cased host name", c.NodeName)
	}
	if c.IPv4.Mode != AddressUnset || c.IPv4.Method.Kind != "first-found" || c.IPv6.Mode != AddressUnset {
		t.Errorf("addresses %+v %+v", c.IPv4, c.IPv6)
	}
	p := c.Pools.IPv4
	if p == nil || p.Name != "default-ipv4-ippool" || p.CIDR.String() != "192.168.0.0/16" || p.BlockSize != 26 ||
		!p.NATOutgoing || p.IPIPMode != v3.EncapNever || p.VXLANMode != v3.EncapNever {
		t.Errorf("default IPv4 pool %+v", p)
	}
	if c.Pools.IPv6 != nil {
		t.Errorf("an IPv6 pool without CALICO_IPV6POOL_CIDR: %+v", c.Pools.IPv6)
	}
	if c.AgentSocket != "/var/run/calico/agent.sock" || c.NodenameFile != "/var/lib/calico/nodename" {
		t.Errorf("paths %q %q", c.AgentSocket, c.NodenameFile)
	}
	if !c.Health.Enabled || c.Health.Addr() != "localhost:9099" {
		t.Errorf("health %+v", c.Health)
	}
	if c.Metrics.Enabled || c.Metrics.Addr() != ":9091" {
		t.Errorf("metrics %+v", c.Metrics)
	}
	if c.Datastore.Type != "etcdv3" || c.Datastore.Etcd.Endpoints[0] != "http://127.0.0.1:2379" {
		t.Errorf("datastore %+v", c.Datastore)
	}
	if !c.IPv6Support || c.IPForwarding != "Enabled" {
		t.Errorf("felix defaults: ipv6 %v forwarding %q", c.IPv6Support, c.IPForwarding)
	}
	if c.LogLevel != slog.LevelInfo || c.RouteRefreshInterval != 90*time.Second || c.WaitForDatastore {
		t.Errorf("level %v refresh %v wait %v", c.LogLevel, c.RouteRefreshInterval, c.WaitForDatastore)
	}
}

func TestGoodValues(t *testing.T) {
	c, err := FromEnv(env(
		"NODENAME", "node-a",
		"IP", "10.0.0.5/24",
		"IP6", "autodetect",
		"IP6_AUTODETECTION_METHOD", "interface=eth0",
		"AS", "64513",
		"CALICO_IPV4POOL_CIDR", "10.244.1.0/16",
		"CALICO_IPV4POOL_BLOCK_SIZE", "24",
		"CALICO_IPV4POOL_IPIP", "CrossSubnet",
		"CALICO_IPV4POOL_NAT_OUTGOING", "false",
		"CALICO_IPV4POOL_NODE_SELECTOR", "zone == 'a'",
		"CALICO_IPV6POOL_CIDR", "fd00:244::/48",
		"CALICO_IPV6POOL_VXLAN", "always",
		"WAIT_FOR_DATASTORE", "true",
		"TABBY_EMBEDDED_ETCD_DIR", "/tmp/etcd",
		"ETCD_ENDPOINTS", "http://localhost:12379",
		"CALICO_AGENT_SOCKET", "/run/tabby/agent.sock",
		"TABBY_NODENAME_FILE", "none",
		"FELIX_HEALTHPORT", "0",
		"FELIX_PROMETHEUSMETRICSENABLED", "true",
		"FELIX_PROMETHEUSMETRICSHOST", "127.0.0.1",
		"FELIX_LOGSEVERITYSCREEN", "Warning",
		"FELIX_ROUTEREFRESHINTERVAL", "2.5",
		"FELIX_IPV6SUPPORT", "false",
		"FELIX_IPFORWARDING", "Disabled",
	), fixedHost("ignored"))
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeName != "node-a" || c.IPv4.Mode != AddressStatic || c.IPv4.Static.String() != "10.0.0.5/24" || !c.IPv4.StaticHasPrefix {
		t.Errorf("identity %q %+v", c.NodeName, c.IPv4)
	}
	if c.IPv6.Mode != AddressAutodetect || c.IPv6.Method.String() != "interface=eth0" {
		t.Errorf("IPv6 %+v", c.IPv6)
	}
	if c.AS == nil || *c.AS != 64513 {
		t.Errorf("AS %v", c.AS)
	}
	p4, p6 := c.Pools.IPv4, c.Pools.IPv6
	if p4.CIDR.String() != "10.244.0.0/16" || p4.BlockSize != 24 || p4.IPIPMode != v3.EncapCrossSubnet || p4.NATOutgoing || p4.NodeSelector != "zone == 'a'" {
		t.Errorf("IPv4 pool %+v", p4)
	}
	if p6 == nil || p6.Name != "default-ipv6-ippool" || p6.CIDR.String() != "fd00:244::/48" || p6.BlockSize != 122 || p6.VXLANMode != v3.EncapAlways || p6.NATOutgoing {
		t.Errorf("IPv6 pool %+v", p6)
	}
	if !c.WaitForDatastore || c.EmbeddedEtcdDir != "/tmp/etcd" || c.EmbeddedEtcdAddress != "127.0.0.1:12379" {
		t.Errorf("datastore wait %v embedded %q at %q", c.WaitForDatastore, c.EmbeddedEtcdDir, c.EmbeddedEtcdAddress)
	}
	if c.AgentSocket != "/run/tabby/agent.sock" || c.NodenameFile != "" || c.Health.Port != 0 {
		t.Errorf("socket %q nodename file %q health %+v", c.AgentSocket, c.NodenameFile, c.Health)
	}
	if c.IPv6Support || c.IPForwarding != "Disabled" {
		t.Errorf("felix: ipv6 %v forwarding %q", c.IPv6Support, c.IPForwarding)
	}
	if !c.Metrics.Enabled || c.Metrics.Addr() != "127.0.0.1:9091" || c.LogLevel != slog.LevelWarn || c.RouteRefreshInterval != 2500*time.Millisecond {
		t.Errorf("metrics %+v level %v refresh %v", c.Metrics, c.LogLevel, c.RouteRefreshInterval)
	}

	c, err = FromEnv(env("NO_DEFAULT_POOLS", "true", "IP", "none", "CALICO_LOG_LEVEL", "debug", "FELIX_LOGSEVERITYSCREEN", "error"), fixedHost("h"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Pools.IPv4 != nil || c.Pools.IPv6 != nil || !c.Pools.NoDefaultPools || c.IPv4.Mode != AddressNone || c.LogLevel != slog.LevelDebug {
		t.Errorf("NO_DEFAULT_POOLS/IP=none/CALICO_LOG_LEVEL: %+v %+v %v", c.Pools, c.IPv4, c.LogLevel)
	}
	c, err = FromEnv(env("CALICO_IPV4POOL_CIDR", "none"), fixedHost("h"))
	if err != nil || c.Pools.IPv4 != nil {
		t.Errorf("CALICO_IPV4POOL_CIDR=none: %v %+v", err, c.Pools.IPv4)
	}
}

// Every bad value is refused with a message that starts with NAME=value.
func TestBadValues(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"IP", "10.0.0.300"}, "IP=10.0.0.300: not an IPv4 address or address/prefix-length (or autodetect, none)"},
		{[]string{"IP", "10.0.0.5/40"}, "IP=10.0.0.5/40: not an IPv4 address or address/prefix-length (or autodetect, none)"},
		{[]string{"IP", "fd00::5"}, "IP=fd00::5: an IPv6 address: IP takes IPv4, IP6 takes IPv6"},
		{[]string{"IP6", "10.0.0.5"}, "IP6=10.0.0.5: an IPv4 address: IP6 takes IPv6, IP takes IPv4"},
		{[]string{"IP", "127.0.0.1"}, "IP=127.0.0.1: not a unicast host address (loopback, link-local, multicast and unspecified addresses cannot be a node address)"},
		{[]string{"IP_AUTODETECTION_METHOD", "interface="}, "IP_AUTODETECTION_METHOD=interface=: interface= needs at least one interface name regex, e.g. interface=^eth0$"},
		{[]string{"IP_AUTODETECTION_METHOD", "magic"}, "IP_AUTODETECTION_METHOD=magic: unknown autodetection method: use first-found, can-reach=DEST, interface=REGEX[,REGEX], skip-interface=REGEX[,REGEX] or cidr=CIDR[,CIDR]"},
		{[]string{"IP6_AUTODETECTION_METHOD", "cidr=fd00::/129"}, `IP6_AUTODETECTION_METHOD=cidr=fd00::/129: "fd00::/129" is not a CIDR (write it like 10.0.0.0/8)`},
		{[]string{"AS", "abc"}, `AS=abc: "abc" is not a valid AS number`},
		{[]string{"AS", "4294967296"}, `AS=4294967296: "4294967296" is not a valid AS number`},
		{[]string{"CALICO_IPV4POOL_CIDR", "10.0.0.0"}, "CALICO_IPV4POOL_CIDR=10.0.0.0: not an IPv4 CIDR (write it like 10.244.0.0/16)"},
		{[]string{"CALICO_IPV4POOL_CIDR", "fd00::/48"}, "CALICO_IPV4POOL_CIDR=fd00::/48: not an IPv4 CIDR"},
		{[]string{"CALICO_IPV4POOL_CIDR", "10.0.0.0/28"}, "CALICO_IPV4POOL_CIDR=10.0.0.0/28: smaller than one block (/26): use a larger pool or set CALICO_IPV4POOL_BLOCK_SIZE to at least 28"},
		{[]string{"CALICO_IPV4POOL_BLOCK_SIZE", "19"}, "CALICO_IPV4POOL_BLOCK_SIZE=19: out of range: an IPv4 block size is 20-32"},
		{[]string{"CALICO_IPV4POOL_BLOCK_SIZE", "big"}, "CALICO_IPV4POOL_BLOCK_SIZE=big: not a number: give a prefix length 20-32"},
		{[]string{"CALICO_IPV4POOL_IPIP", "sometimes"}, "CALICO_IPV4POOL_IPIP=sometimes: not an encapsulation mode: use Always, CrossSubnet or Never"},
		{[]string{"CALICO_IPV4POOL_VXLAN", "yes"}, "CALICO_IPV4POOL_VXLAN=yes: not an encapsulation mode: use Always, CrossSubnet or Never"},
		{[]string{"CALICO_IPV4POOL_IPIP", "Always", "CALICO_IPV4POOL_VXLAN", "Always"}, "CALICO_IPV4POOL_IPIP=Always and CALICO_IPV4POOL_VXLAN=Always: a pool uses one encapsulation: set one of them to Never"},
		{[]string{"CALICO_IPV4POOL_NAT_OUTGOING", "maybe"}, "CALICO_IPV4POOL_NAT_OUTGOING=maybe: not a boolean: use true or false"},
		{[]string{"CALICO_IPV4POOL_NODE_SELECTOR", "zone =="}, "CALICO_IPV4POOL_NODE_SELECTOR=zone ==: "},
		{[]string{"CALICO_IPV6POOL_CIDR", "fd00::/48", "CALICO_IPV6POOL_BLOCK_SIZE", "64"}, "CALICO_IPV6POOL_BLOCK_SIZE=64: out of range: an IPv6 block size is 116-128"},
		{[]string{"CALICO_IPV6POOL_CIDR", "10.0.0.0/16"}, "CALICO_IPV6POOL_CIDR=10.0.0.0/16: not an IPv6 CIDR"},
		{[]string{"NO_DEFAULT_POOLS", "true", "CALICO_IPV4POOL_CIDR", "10.0.0.0/16"}, "CALICO_IPV4POOL_CIDR=10.0.0.0/16: contradicts NO_DEFAULT_POOLS=true: unset one of them"},
		{[]string{"NO_DEFAULT_POOLS", "sure"}, "NO_DEFAULT_POOLS=sure: not a boolean: use true or false"},
		{[]string{"WAIT_FOR_DATASTORE", "later"}, "WAIT_FOR_DATASTORE=later: not a boolean: use true or false"},
		{[]string{"NODENAME", "Bad_Name"}, "NODENAME=Bad_Name: not a valid node name: a lowercase RFC 1123 subdomain"},
		{[]string{"DATASTORE_TYPE", "consul"}, `datastore configuration from the environment: datastore type "consul" is not known: use "etcdv3" or "kubernetes"`},
		{[]string{"ETCD_ENDPOINTS", "127.0.0.1:2379"}, "ETCD_ENDPOINTS: "},
		{[]string{"TABBY_EMBEDDED_ETCD_DIR", "/tmp/x", "ETCD_ENDPOINTS", "http://10.0.0.1:2379"}, `TABBY_EMBEDDED_ETCD_DIR is set, so ETCD_ENDPOINTS must be a loopback address for the embedded etcd (got "http://10.0.0.1:2379")`},
		{[]string{"CALICO_AGENT_SOCKET", "agent.sock"}, "CALICO_AGENT_SOCKET=agent.sock: must be an absolute path"},
		{[]string{"FELIX_HEALTHPORT", "99999"}, "FELIX_HEALTHPORT=99999: not a port number: use 1-65535 (0 picks a free port)"},
		{[]string{"FELIX_HEALTHENABLED", "si"}, "FELIX_HEALTHENABLED=si: not a boolean: use true or false"},
		{[]string{"FELIX_PROMETHEUSMETRICSPORT", "http"}, "FELIX_PROMETHEUSMETRICSPORT=http: not a port number"},
		{[]string{"FELIX_LOGSEVERITYSCREEN", "loud"}, "FELIX_LOGSEVERITYSCREEN=loud: not a log level: use debug, info, warning or error"},
		{[]string{"FELIX_ROUTEREFRESHINTERVAL", "soon"}, "FELIX_ROUTEREFRESHINTERVAL=soon: not a duration: give seconds, e.g. 90"},
		{[]string{"FELIX_IPV6SUPPORT", "sometimes"}, "FELIX_IPV6SUPPORT=sometimes: not a boolean: use true or false"},
		{[]string{"FELIX_IPFORWARDING", "on"}, "FELIX_IPFORWARDING=on: use Enabled or Disabled"},
		{[]string{"CALICO_NETWORKING_BACKEND", "gobgp"}, "CALICO_NETWORKING_BACKEND=gobgp: not a networking backend: use bird, vxlan or none"},
	} {
		_, err := FromEnv(env(tc.env...), fixedHost("h"))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%v: got %v\nwant an error starting %q", tc.env, err, tc.want)
		}
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	_, err := FromEnv(env("IP", "nope", "AS", "x", "CALICO_IPV4POOL_IPIP", "maybe"), fixedHost("h"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, name := range []string{"IP=nope", "AS=x", "CALICO_IPV4POOL_IPIP=maybe"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not mention %s:\n%v", name, err)
		}
	}
}

func TestNodeNameFromHost(t *testing.T) {
	_, err := FromEnv(env(), func() (string, error) { return "", errors.New("uname failed") })
	if err == nil || !strings.Contains(err.Error(), "NODENAME is not set and the host name cannot be read: uname failed") {
		t.Errorf("got %v", err)
	}
	c, err := FromEnv(env("HOSTNAME", "from-env"), fixedHost("ignored"))
	if err != nil || c.NodeName != "from-env" {
		t.Errorf("HOSTNAME fallback: %q %v", c.NodeName, err)
	}
}
