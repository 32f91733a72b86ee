package v3

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// FelixConfiguration is the dataplane's configuration: "default" for the
// cluster, "node.<name>" for one node. Every field is optional; nil means the
// built-in default (see the dataplane's config package). The field list is
// the subset of Calico's that an iptables/BGP dataplane uses, plus the common
// fields of other modes so that existing manifests still load.
type FelixConfiguration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              FelixConfigurationSpec `json:"spec,omitempty"`
}

// ProtoPort is a failsafe port: protocol (TCP, UDP or SCTP; empty means TCP),
// port and an optional CIDR.
type ProtoPort struct {
	Protocol string `json:"protocol,omitempty"`
	Port     uint16 `json:"port"`
	Net      string `json:"net,omitempty"`
}

type RouteTableRange struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

type FelixConfigurationSpec struct {
	UseInternalDataplaneDriver         *bool              `json:"useInternalDataplaneDriver,omitempty"`
	DataplaneDriver                    string             `json:"dataplaneDriver,omitempty"`
	IPv6Support                        *bool              `json:"ipv6Support,omitempty"`
	RouteRefreshInterval               *metav1.Duration   `json:"routeRefreshInterval,omitempty"`
	InterfaceRefreshInterval           *metav1.Duration   `json:"interfaceRefreshInterval,omitempty"`
	IptablesRefreshInterval            *metav1.Duration   `json:"iptablesRefreshInterval,omitempty"`
	IptablesPostWriteCheckInterval     *metav1.Duration   `json:"iptablesPostWriteCheckInterval,omitempty"`
	IptablesLockTimeout                *metav1.Duration   `json:"iptablesLockTimeout,omitempty"`
	IptablesLockProbeInterval          *metav1.Duration   `json:"iptablesLockProbeInterval,omitempty"`
	IpsetsRefreshInterval              *metav1.Duration   `json:"ipsetsRefreshInterval,omitempty"`
	MaxIpsetSize                       *int               `json:"maxIpsetSize,omitempty"`
	IptablesBackend                    *string            `json:"iptablesBackend,omitempty"`
	NetlinkTimeout                     *metav1.Duration   `json:"netlinkTimeout,omitempty"`
	MetadataAddr                       *string            `json:"metadataAddr,omitempty"`
	MetadataPort                       *int               `json:"metadataPort,omitempty"`
	OpenstackRegion                    string             `json:"openstackRegion,omitempty"`
	InterfacePrefix                    string             `json:"interfacePrefix,omitempty"`
	InterfaceExclude                   string             `json:"interfaceExclude,omitempty"`
	ChainInsertMode                    string             `json:"chainInsertMode,omitempty"`
	DefaultEndpointToHostAction        string             `json:"defaultEndpointToHostAction,omitempty"`
	IptablesFilterAllowAction          string             `json:"iptablesFilterAllowAction,omitempty"`
	IptablesMangleAllowAction          string             `json:"iptablesMangleAllowAction,omitempty"`
	IptablesFilterDenyAction           string             `json:"iptablesFilterDenyAction,omitempty"`
	LogPrefix                          string             `json:"logPrefix,omitempty"`
	LogFilePath                        string             `json:"logFilePath,omitempty"`
	LogSeverityFile                    string             `json:"logSeverityFile,omitempty"`
	LogSeverityScreen                  string             `json:"logSeverityScreen,omitempty"`
	LogSeveritySys                     string             `json:"logSeveritySys,omitempty"`
	IPIPEnabled                        *bool              `json:"ipipEnabled,omitempty"`
	IPIPMTU                            *int               `json:"ipipMTU,omitempty"`
	VXLANEnabled                       *bool              `json:"vxlanEnabled,omitempty"`
	VXLANMTU                           *int               `json:"vxlanMTU,omitempty"`
	VXLANMTUV6                         *int               `json:"vxlanMTUV6,omitempty"`
	VXLANPort                          *int               `json:"vxlanPort,omitempty"`
	VXLANVNI                           *int               `json:"vxlanVNI,omitempty"`
	AllowVXLANPacketsFromWorkloads     *bool              `json:"allowVXLANPacketsFromWorkloads,omitempty"`
	AllowIPIPPacketsFromWorkloads      *bool              `json:"allowIPIPPacketsFromWorkloads,omitempty"`
	MTUIfacePattern                    string             `json:"mtuIfacePattern,omitempty"`
	ReportingInterval                  *metav1.Duration   `json:"reportingInterval,omitempty"`
	ReportingTTL                       *metav1.Duration   `json:"reportingTTL,omitempty"`
	EndpointReportingEnabled           *bool              `json:"endpointReportingEnabled,omitempty"`
	EndpointReportingDelay             *metav1.Duration   `json:"endpointReportingDelay,omitempty"`
	IptablesMarkMask                   *uint32            `json:"iptablesMarkMask,omitempty"`
	DisableConntrackInvalidCheck       *bool              `json:"disableConntrackInvalidCheck,omitempty"`
	HealthEnabled                      *bool              `json:"healthEnabled,omitempty"`
	HealthHost                         *string            `json:"healthHost,omitempty"`
	HealthPort                         *int               `json:"healthPort,omitempty"`
	PrometheusMetricsEnabled           *bool              `json:"prometheusMetricsEnabled,omitempty"`
	PrometheusMetricsHost              string             `json:"prometheusMetricsHost,omitempty"`
	PrometheusMetricsPort              *int               `json:"prometheusMetricsPort,omitempty"`
	PrometheusGoMetricsEnabled         *bool              `json:"prometheusGoMetricsEnabled,omitempty"`
	PrometheusProcessMetricsEnabled    *bool              `json:"prometheusProcessMetricsEnabled,omitempty"`
	FailsafeInboundHostPorts           *[]ProtoPort       `json:"failsafeInboundHostPorts,omitempty"`
	FailsafeOutboundHostPorts          *[]ProtoPort       `json:"failsafeOutboundHostPorts,omitempty"`
	KubeNodePortRanges                 *[]Port            `json:"kubeNodePortRanges,omitempty"`
	NATPortRange                       *Port              `json:"natPortRange,omitempty"`
	NATOutgoingAddress                 string             `json:"natOutgoingAddress,omitempty"`
	NATOutgoingExclusions              *string            `json:"natOutgoingExclusions,omitempty"`
	DeviceRouteSourceAddress           string             `json:"deviceRouteSourceAddress,omitempty"`
	DeviceRouteSourceAddressIPv6       string             `json:"deviceRouteSourceAddressIPv6,omitempty"`
	DeviceRouteProtocol                *int               `json:"deviceRouteProtocol,omitempty"`
	RemoveExternalRoutes               *bool              `json:"removeExternalRoutes,omitempty"`
	ExternalNodesCIDRList              *[]string          `json:"externalNodesList,omitempty"`
	DebugMemoryProfilePath             string             `json:"debugMemoryProfilePath,omitempty"`
	DebugDisableLogDropping            *bool              `json:"debugDisableLogDropping,omitempty"`
	IptablesNATOutgoingInterfaceFilter string             `json:"iptablesNATOutgoingInterfaceFilter,omitempty"`
	SidecarAccelerationEnabled         *bool              `json:"sidecarAccelerationEnabled,omitempty"`
	XDPEnabled                         *bool              `json:"xdpEnabled,omitempty"`
	GenericXDPEnabled                  *bool              `json:"genericXDPEnabled,omitempty"`
	BPFEnabled                         *bool              `json:"bpfEnabled,omitempty"`
	BPFLogLevel                        string             `json:"bpfLogLevel,omitempty"`
	NFTablesMode                       *string            `json:"nftablesMode,omitempty"`
	RouteSource                        string             `json:"routeSource,omitempty"`
	RouteTableRange                    *RouteTableRange   `json:"routeTableRange,omitempty"`
	RouteTableRanges                   *[]RouteTableRange `json:"routeTableRanges,omitempty"`
	RouteSyncDisabled                  *bool              `json:"routeSyncDisabled,omitempty"`
	ProgramClusterRoutes               *string            `json:"programClusterRoutes,omitempty"`
	WireguardEnabled                   *bool              `json:"wireguardEnabled,omitempty"`
	WireguardEnabledV6                 *bool              `json:"wireguardEnabledV6,omitempty"`
	WireguardListeningPort             *int               `json:"wireguardListeningPort,omitempty"`
	WireguardMTU                       *int               `json:"wireguardMTU,omitempty"`
	WireguardInterfaceName             string             `json:"wireguardInterfaceName,omitempty"`
	IPForwarding                       string             `json:"ipForwarding,omitempty"`
	FloatingIPs                        *string            `json:"floatingIPs,omitempty"`
	ServiceLoopPrevention              string             `json:"serviceLoopPrevention,omitempty"`
	IPv4NormalRoutePriority            *int               `json:"ipv4NormalRoutePriority,omitempty"`
	IPv6NormalRoutePriority            *int               `json:"ipv6NormalRoutePriority,omitempty"`
	IPv4ElevatedRoutePriority          *int               `json:"ipv4ElevatedRoutePriority,omitempty"`
	IPv6ElevatedRoutePriority          *int               `json:"ipv6ElevatedRoutePriority,omitempty"`

	// FelixConfigurationCompat is inlined: the rest of Calico's fields.
	FelixConfigurationCompat
}

func init() {
	register(KindInfo{Kind: "FelixConfiguration", Plural: "felixconfigurations", Aliases: []string{"felixconfiguration", "felixconfigurations", "felixconfig", "felixconfigs"}, new: func() Resource { return &FelixConfiguration{} }})
}
