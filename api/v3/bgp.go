package v3

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// SecretKeySelector names a key of a Kubernetes Secret (in calico-node's namespace).
type SecretKeySelector struct {
	Name string `json:"name"`
	Key  string `json:"key"`
	// Optional is Kubernetes' SecretKeySelector field; Calico's CRD accepts it.
	Optional *bool `json:"optional,omitempty"`
}

// BGPPassword is where a TCP-MD5 password comes from. Calico only has
// secretKeyRef; Tabby adds an inline value and a file for the etcd datastore,
// where there are no Secrets.
type BGPPassword struct {
	SecretKeyRef *SecretKeySelector `json:"secretKeyRef,omitempty"`
	Value        string             `json:"value,omitempty"`
	File         string             `json:"file,omitempty"`
}

type SourceAddress string

const (
	SourceAddressUseNodeIP SourceAddress = "UseNodeIP"
	SourceAddressNone      SourceAddress = "None"
)

type NextHopMode string

const (
	NextHopModeAuto NextHopMode = "Auto"
	NextHopModeSelf NextHopMode = "Self"
	NextHopModeKeep NextHopMode = "Keep"
)

type ReversePeering string

const (
	ReversePeeringAuto   ReversePeering = "Auto"
	ReversePeeringManual ReversePeering = "Manual"
)

// BGPPeer is a BGP session that one, some or all nodes open.
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              BGPPeerSpec `json:"spec,omitempty"`
}

type BGPPeerSpec struct {
	Node                     string           `json:"node,omitempty"`
	PeerIP                   string           `json:"peerIP,omitempty"`
	ASNumber                 ASNumber         `json:"asNumber,omitempty"`
	NodeSelector             string           `json:"nodeSelector,omitempty"`
	PeerSelector             string           `json:"peerSelector,omitempty"`
	KeepOriginalNextHop      bool             `json:"keepOriginalNextHop,omitempty"`
	NextHopMode              *NextHopMode     `json:"nextHopMode,omitempty"`
	Password                 *BGPPassword     `json:"password,omitempty"`
	SourceAddress            SourceAddress    `json:"sourceAddress,omitempty"`
	FailureDetectionMode     string           `json:"failureDetectionMode,omitempty"`
	RestartMode              string           `json:"restartMode,omitempty"`
	MaxRestartTime           *metav1.Duration `json:"maxRestartTime,omitempty"`
	BIRDGatewayMode          string           `json:"birdGatewayMode,omitempty"`
	NumAllowedLocalASNumbers *int32           `json:"numAllowedLocalASNumbers,omitempty"`
	TTLSecurity              *uint8           `json:"ttlSecurity,omitempty"`
	KeepaliveTime            *metav1.Duration `json:"keepaliveTime,omitempty"`
	ReachableBy              string           `json:"reachableBy,omitempty"`
	Filters                  []string         `json:"filters,omitempty"`
	LocalWorkloadSelector    string           `json:"localWorkloadSelector,omitempty"`
	ReversePeering           *ReversePeering  `json:"reversePeering,omitempty"`
	LocalASNumber            *ASNumber        `json:"localASNumber,omitempty"`
}

// BGPConfiguration is the cluster's ("default") or one node's ("node.<name>") BGP settings.
type BGPConfiguration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              BGPConfigurationSpec `json:"spec,omitempty"`
}

type ServiceIPBlock struct {
	CIDR string `json:"cidr,omitempty"`
}

type Community struct {
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
}

type PrefixAdvertisement struct {
	CIDR        string   `json:"cidr,omitempty"`
	Communities []string `json:"communities,omitempty"`
}

type BGPConfigurationSpec struct {
	LogSeverityScreen        string                `json:"logSeverityScreen,omitempty"`
	NodeToNodeMeshEnabled    *bool                 `json:"nodeToNodeMeshEnabled,omitempty"`
	ASNumber                 *ASNumber             `json:"asNumber,omitempty"`
	ServiceLoadBalancerIPs   []ServiceIPBlock      `json:"serviceLoadBalancerIPs,omitempty"`
	ServiceExternalIPs       []ServiceIPBlock      `json:"serviceExternalIPs,omitempty"`
	ServiceClusterIPs        []ServiceIPBlock      `json:"serviceClusterIPs,omitempty"`
	Communities              []Community           `json:"communities,omitempty"`
	ListenPort               uint16                `json:"listenPort,omitempty"`
	PrefixAdvertisements     []PrefixAdvertisement `json:"prefixAdvertisements,omitempty"`
	NodeMeshPassword         *BGPPassword          `json:"nodeMeshPassword,omitempty"`
	NodeMeshMaxRestartTime   *metav1.Duration      `json:"nodeMeshMaxRestartTime,omitempty"`
	BindMode                 *string               `json:"bindMode,omitempty"`
	IgnoredInterfaces        []string              `json:"ignoredInterfaces,omitempty"`
	LocalWorkloadPeeringIPV4 string                `json:"localWorkloadPeeringIPV4,omitempty"`
	LocalWorkloadPeeringIPV6 string                `json:"localWorkloadPeeringIPV6,omitempty"`
	ProgramClusterRoutes     *string               `json:"programClusterRoutes,omitempty"`
}

// Node is a host running calico-node.
type Node struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              NodeSpec `json:"spec,omitempty"`
	// Status is omitted from output when empty (omitzero), so a Node that
	// never had status written reads like Calico's.
	Status NodeStatus `json:"status,omitzero"`
}

type NodeBGPSpec struct {
	ASNumber                *ASNumber `json:"asNumber,omitempty"`
	IPv4Address             string    `json:"ipv4Address,omitempty"`
	IPv6Address             string    `json:"ipv6Address,omitempty"`
	IPv4IPIPTunnelAddr      string    `json:"ipv4IPIPTunnelAddr,omitempty"`
	RouteReflectorClusterID string    `json:"routeReflectorClusterID,omitempty"`
}

type OrchRef struct {
	NodeName     string `json:"nodeName,omitempty"`
	Orchestrator string `json:"orchestrator"`
}

type NodeAddress struct {
	Address string `json:"address"`
	Type    string `json:"type,omitempty"`
}

type NodeSpec struct {
	BGP                  *NodeBGPSpec       `json:"bgp,omitempty"`
	IPv4VXLANTunnelAddr  string             `json:"ipv4VXLANTunnelAddr,omitempty"`
	IPv6VXLANTunnelAddr  string             `json:"ipv6VXLANTunnelAddr,omitempty"`
	VXLANTunnelMACAddr   string             `json:"vxlanTunnelMACAddr,omitempty"`
	VXLANTunnelMACAddrV6 string             `json:"vxlanTunnelMACAddrV6,omitempty"`
	OrchRefs             []OrchRef          `json:"orchRefs,omitempty"`
	Wireguard            *NodeWireguardSpec `json:"wireguard,omitempty"`
	Addresses            []NodeAddress      `json:"addresses,omitempty"`
	Interfaces           []NodeInterface    `json:"interfaces,omitempty"`
}

// NodeWireguardSpec holds the node's WireGuard interface addresses (Calico
// field; Tabby does not run WireGuard, but manifests carrying it still load).
type NodeWireguardSpec struct {
	InterfaceIPv4Address string `json:"interfaceIPv4Address,omitempty"`
	InterfaceIPv6Address string `json:"interfaceIPv6Address,omitempty"`
}

// NodeInterface is one host interface and its addresses.
type NodeInterface struct {
	Name      string   `json:"name,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
}

type NodeStatus struct {
	WireguardPublicKey   string   `json:"wireguardPublicKey,omitempty"`
	WireguardPublicKeyV6 string   `json:"wireguardPublicKeyV6,omitempty"`
	PodCIDRs             []string `json:"podCIDRs,omitempty"`
}

// IsZero reports whether the status holds nothing, for omitzero: an empty
// but non-nil list counts as nothing too.
func (s NodeStatus) IsZero() bool {
	return s.WireguardPublicKey == "" && s.WireguardPublicKeyV6 == "" && len(s.PodCIDRs) == 0
}

func init() {
	register(KindInfo{Kind: "BGPPeer", Plural: "bgppeers", Aliases: []string{"bgppeer", "bgppeers", "bgpp", "bgpps", "bp", "bps"}, new: func() Resource { return &BGPPeer{} }})
	register(KindInfo{Kind: "BGPConfiguration", Plural: "bgpconfigurations", Aliases: []string{"bgpconfiguration", "bgpconfigurations", "bgpconfig", "bgpconfigs"}, new: func() Resource { return &BGPConfiguration{} }})
	register(KindInfo{Kind: "Node", Plural: "nodes", Aliases: []string{"node", "nodes", "no"}, new: func() Resource { return &Node{} }})
}
