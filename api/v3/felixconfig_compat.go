package v3

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// FelixConfigurationCompat holds the FelixConfiguration fields of Calico that
// Tabby's iptables/BGP dataplane does not act on (eBPF, nftables, WireGuard,
// flow logs, usage reporting, Go runtime tuning, ...). They exist so that
// Calico's manifests, including the defaults Calico's operator writes, decode
// under strict decoding and round-trip unchanged. Their json names are
// Calico's.
type FelixConfigurationCompat struct {
	DataplaneWatchdogTimeout           *metav1.Duration        `json:"dataplaneWatchdogTimeout,omitempty"`
	IptablesLockFilePath               string                  `json:"iptablesLockFilePath,omitempty"`
	FeatureDetectOverride              string                  `json:"featureDetectOverride,omitempty"`
	FeatureGates                       string                  `json:"featureGates,omitempty"`
	XDPRefreshInterval                 *metav1.Duration        `json:"xdpRefreshInterval,omitempty"`
	LogDebugFilenameRegex              string                  `json:"logDebugFilenameRegex,omitempty"`
	EndpointStatusPathPrefix           string                  `json:"endpointStatusPathPrefix,omitempty"`
	HealthTimeoutOverrides             []HealthTimeoutOverride `json:"healthTimeoutOverrides,omitempty"`
	PrometheusWireGuardMetricsEnabled  *bool                   `json:"prometheusWireGuardMetricsEnabled,omitempty"`
	PolicySyncPathPrefix               string                  `json:"policySyncPathPrefix,omitempty"`
	UsageReportingEnabled              *bool                   `json:"usageReportingEnabled,omitempty"`
	UsageReportingInitialDelay         *metav1.Duration        `json:"usageReportingInitialDelay,omitempty"`
	UsageReportingInterval             *metav1.Duration        `json:"usageReportingInterval,omitempty"`
	DebugSimulateCalcGraphHangAfter    *metav1.Duration        `json:"debugSimulateCalcGraphHangAfter,omitempty"`
	DebugSimulateDataplaneHangAfter    *metav1.Duration        `json:"debugSimulateDataplaneHangAfter,omitempty"`
	DebugSimulateDataplaneApplyDelay   *metav1.Duration        `json:"debugSimulateDataplaneApplyDelay,omitempty"`
	DebugHost                          *string                 `json:"debugHost,omitempty"`
	DebugPort                          *int                    `json:"debugPort,omitempty"`
	NftablesRefreshInterval            *metav1.Duration        `json:"nftablesRefreshInterval,omitempty"`
	NftablesFilterAllowAction          string                  `json:"nftablesFilterAllowAction,omitempty"`
	NftablesMangleAllowAction          string                  `json:"nftablesMangleAllowAction,omitempty"`
	NftablesFilterDenyAction           string                  `json:"nftablesFilterDenyAction,omitempty"`
	NftablesMarkMask                   *uint32                 `json:"nftablesMarkMask,omitempty"`
	BPFDisableUnprivileged             *bool                   `json:"bpfDisableUnprivileged,omitempty"`
	BPFConntrackLogLevel               string                  `json:"bpfConntrackLogLevel,omitempty"`
	BPFConntrackCleanupMode            *string                 `json:"bpfConntrackMode,omitempty"`
	BPFLogFilters                      *map[string]string      `json:"bpfLogFilters,omitempty"`
	BPFCTLBLogFilter                   string                  `json:"bpfCTLBLogFilter,omitempty"`
	BPFDataIfacePattern                string                  `json:"bpfDataIfacePattern,omitempty"`
	BPFL3IfacePattern                  string                  `json:"bpfL3IfacePattern,omitempty"`
	BPFConnectTimeLoadBalancingEnabled *bool                   `json:"bpfConnectTimeLoadBalancingEnabled,omitempty"`
	BPFConnectTimeLoadBalancing        *string                 `json:"bpfConnectTimeLoadBalancing,omitempty"`
	BPFHostNetworkedNATWithoutCTLB     *string                 `json:"bpfHostNetworkedNATWithoutCTLB,omitempty"`
	BPFExternalServiceMode             string                  `json:"bpfExternalServiceMode,omitempty"`
	BPFDSROptoutCIDRs                  *[]string               `json:"bpfDSROptoutCIDRs,omitempty"`
	BPFExtToServiceConnmark            *int                    `json:"bpfExtToServiceConnmark,omitempty"`
	BPFKubeProxyIptablesCleanupEnabled *bool                   `json:"bpfKubeProxyIptablesCleanupEnabled,omitempty"`
	BPFKubeProxyMinSyncPeriod          *metav1.Duration        `json:"bpfKubeProxyMinSyncPeriod,omitempty"`
	BPFKubeProxyEndpointSlicesEnabled  *bool                   `json:"bpfKubeProxyEndpointSlicesEnabled,omitempty"`
	BPFPSNATPorts                      *Port                   `json:"bpfPSNATPorts,omitempty"`
	BPFMapSizeNATFrontend              *int                    `json:"bpfMapSizeNATFrontend,omitempty"`
	BPFMapSizeNATBackend               *int                    `json:"bpfMapSizeNATBackend,omitempty"`
	BPFMapSizeNATAffinity              *int                    `json:"bpfMapSizeNATAffinity,omitempty"`
	BPFMapSizeRoute                    *int                    `json:"bpfMapSizeRoute,omitempty"`
	BPFMapSizeConntrack                *int                    `json:"bpfMapSizeConntrack,omitempty"`
	BPFMapSizePerCPUConntrack          *int                    `json:"bpfMapSizePerCpuConntrack,omitempty"`
	BPFMapSizeConntrackScaling         string                  `json:"bpfMapSizeConntrackScaling,omitempty"`
	BPFMapSizeConntrackCleanupQueue    *int                    `json:"bpfMapSizeConntrackCleanupQueue,omitempty"`
	BPFMapSizeIPSets                   *int                    `json:"bpfMapSizeIPSets,omitempty"`
	BPFMapSizeIfState                  *int                    `json:"bpfMapSizeIfState,omitempty"`
	BPFHostConntrackBypass             *bool                   `json:"bpfHostConntrackBypass,omitempty"`
	BPFEnforceRPF                      string                  `json:"bpfEnforceRPF,omitempty"`
	BPFPolicyDebugEnabled              *bool                   `json:"bpfPolicyDebugEnabled,omitempty"`
	BPFForceTrackPacketsFromIfaces     *[]string               `json:"bpfForceTrackPacketsFromIfaces,omitempty"`
	BPFDisableGROForIfaces             string                  `json:"bpfDisableGROForIfaces,omitempty"`
	BPFExcludeCIDRsFromNAT             *[]string               `json:"bpfExcludeCIDRsFromNAT,omitempty"`
	BPFExportBufferSizeMB              *int                    `json:"bpfExportBufferSizeMB,omitempty"`
	BPFRedirectToPeer                  string                  `json:"bpfRedirectToPeer,omitempty"`
	BPFProfiling                       string                  `json:"bpfProfiling,omitempty"`
	FlowLogsFlushInterval              *metav1.Duration        `json:"flowLogsFlushInterval,omitempty"`
	FlowLogsCollectorDebugTrace        *bool                   `json:"flowLogsCollectorDebugTrace,omitempty"`
	FlowLogsGoldmaneServer             *string                 `json:"flowLogsGoldmaneServer,omitempty"`
	FlowLogsLocalReporter              *string                 `json:"flowLogsLocalReporter,omitempty"`
	FlowLogsPolicyEvaluationMode       *string                 `json:"flowLogsPolicyEvaluationMode,omitempty"`
	WireguardThreadingEnabled          *bool                   `json:"wireguardThreadingEnabled,omitempty"`
	WireguardListeningPortV6           *int                    `json:"wireguardListeningPortV6,omitempty"`
	WireguardRoutingRulePriority       *int                    `json:"wireguardRoutingRulePriority,omitempty"`
	WireguardInterfaceNameV6           string                  `json:"wireguardInterfaceNameV6,omitempty"`
	WireguardMTUV6                     *int                    `json:"wireguardMTUV6,omitempty"`
	WireguardHostEncryptionEnabled     *bool                   `json:"wireguardHostEncryptionEnabled,omitempty"`
	WireguardPersistentKeepAlive       *metav1.Duration        `json:"wireguardKeepAlive,omitempty"`
	AWSSrcDstCheck                     *string                 `json:"awsSrcDstCheck,omitempty"`
	WorkloadSourceSpoofing             string                  `json:"workloadSourceSpoofing,omitempty"`
	WindowsManageFirewallRules         *string                 `json:"windowsManageFirewallRules,omitempty"`
	GoGCThreshold                      *int                    `json:"goGCThreshold,omitempty"`
	GoMemoryLimitMB                    *int                    `json:"goMemoryLimitMB,omitempty"`
	GoMaxProcs                         *int                    `json:"goMaxProcs,omitempty"`
	RequireMTUFile                     *bool                   `json:"requireMTUFile,omitempty"`
}

// HealthTimeoutOverride overrides the watchdog timeout of one Felix component.
type HealthTimeoutOverride struct {
	Name    string          `json:"name"`
	Timeout metav1.Duration `json:"timeout"`
}
