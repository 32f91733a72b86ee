// Package config reads calico-node's environment — the variables of
// Calico's calico.yaml plus the few Tabby adds — into one typed Config.
//
// It owns the variable names, their defaults and the wording of every
// refusal, which always starts with NAME=value so the operator knows what to
// fix; every bad value is reported at once. It is pure: it reads the
// environment only through the getenv function it is given and touches
// neither the network, the datastore nor the kernel. Deciding what the
// values mean for the Node and the pools is the startup package's job.
//
// # Variables
//
// Identity and datastore:
//
//	NODENAME                      node name; else HOSTNAME, else the host name (lower-cased)
//	CALICO_K8S_NODE_REF           Kubernetes node name, recorded in Node.spec.orchRefs
//	DATASTORE_TYPE                etcdv3 (default; kubernetes is not supported yet)
//	ETCD_ENDPOINTS                comma-separated URLs (default http://127.0.0.1:2379)
//	ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE   TLS (each also as CALICO_<name>)
//	WAIT_FOR_DATASTORE            true: retry with backoff until the datastore answers (default false: fail)
//	TABBY_EMBEDDED_ETCD_DIR       run a single-member etcd in calico-node with its data here, listening
//	                              on the (loopback) ETCD_ENDPOINTS address: one-machine mode
//
// Node address and BGP (CALICO_NETWORKING_BACKEND none skips them):
//
//	CALICO_NETWORKING_BACKEND     bird (default), vxlan, none
//	IP                            autodetect | none | address[/prefix]; unset: autodetect for a new
//	                              node or when IP_AUTODETECTION_METHOD is set, else keep the stored one
//	IP_AUTODETECTION_METHOD       first-found (default), can-reach=DEST, interface=REGEX,...,
//	                              skip-interface=REGEX,..., cidr=CIDR,...
//	IP6, IP6_AUTODETECTION_METHOD the same for IPv6 (detected only with IP6=autodetect)
//	AS                            the node's AS number (64512 or asdot 1.10); unset keeps the stored one
//	DISABLE_NODE_IP_CHECK         true: do not refuse an address another Node uses
//
// Default pools (created only when no pool of the family exists):
//
//	NO_DEFAULT_POOLS              true: create none
//	CALICO_IPV4POOL_CIDR          default 192.168.0.0/16; none: no IPv4 pool; named default-ipv4-ippool
//	CALICO_IPV4POOL_BLOCK_SIZE    20-32, default 26
//	CALICO_IPV4POOL_IPIP          Always, CrossSubnet, Never (default; also off)
//	CALICO_IPV4POOL_VXLAN         Always, CrossSubnet, Never (default)
//	CALICO_IPV4POOL_NAT_OUTGOING  default true
//	CALICO_IPV4POOL_NODE_SELECTOR default all()
//	CALICO_IPV4POOL_DISABLE_BGP_EXPORT  default false
//	CALICO_IPV6POOL_CIDR          an IPv6 pool default-ipv6-ippool is created only when this is set
//	CALICO_IPV6POOL_BLOCK_SIZE (116-128, default 122), _VXLAN, _NAT_OUTGOING (default false),
//	_NODE_SELECTOR, _DISABLE_BGP_EXPORT
//
// Agent, health, metrics, logs, Felix:
//
//	CALICO_AGENT_SOCKET           agent gRPC socket, default /var/run/calico/agent.sock (mode 0600)
//	TABBY_NODENAME_FILE           where the node name is written for the CNI plugin,
//	                              default /var/lib/calico/nodename; none: do not write it
//	FELIX_HEALTHENABLED           default true (calico.yaml's value; Felix's own default is false)
//	FELIX_HEALTHHOST, _PORT       default localhost:9099 (/liveness, /readiness)
//	FELIX_PROMETHEUSMETRICSENABLED  default false, as Calico
//	FELIX_PROMETHEUSMETRICSHOST, _PORT  default every address, port 9091 (/metrics)
//	FELIX_PROMETHEUSGOMETRICSENABLED, FELIX_PROMETHEUSPROCESSMETRICSENABLED  default true
//	CALICO_LOG_LEVEL, else FELIX_LOGSEVERITYSCREEN  debug, info (default), warning, error
//	FELIX_ROUTEREFRESHINTERVAL    seconds between full route resyncs, default 90
//	FELIX_IPV6SUPPORT             default true
//	FELIX_IPFORWARDING            Enabled (default) or Disabled
//
// A port of 0 picks a free port (for tests).
package config
