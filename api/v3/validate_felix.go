package v3

import (
	"regexp"
	"strings"

	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
)

// mtu checks an MTU: 0 means auto-detect; otherwise at least min (576 for
// IPv4, the smallest datagram every host must accept; 1280 for IPv6).
func (v *validator) mtu(path string, p *int, min int) {
	if p != nil && *p != 0 && (*p < min || *p > 65535) {
		v.add(path, "%d is out of range: use 0 (auto-detect) or %d-65535", *p, min)
	}
}

func (v *validator) port(path string, p *int) { v.intRange(path, p, 1, 65535) }

func (v *validator) optionalOneOf(path string, p *string, allowed ...string) {
	if p == nil {
		return
	}
	if *p == "" {
		v.add(path, `"" is not one of %s`, strings.Join(allowed, ", "))
		return
	}
	v.oneOf(path, *p, allowed...)
}

// felixConfig checks the fields Felix would refuse or misread. Enumerations
// follow Calico's validator: exact case where it has one, case-insensitive
// where only Calico's CRD pattern (?i) constrains the field.
func (v *validator) felixConfig(s *FelixConfigurationSpec) {
	// Enumerations.
	v.optionalOneOf("spec.iptablesBackend", s.IptablesBackend, "Auto", "Legacy", "NFT")
	if s.ChainInsertMode != "" {
		v.oneOfFold("spec.chainInsertMode", s.ChainInsertMode, "Insert", "Append")
	}
	v.oneOf("spec.defaultEndpointToHostAction", s.DefaultEndpointToHostAction, "Drop", "Accept", "Return")
	v.oneOf("spec.iptablesFilterAllowAction", s.IptablesFilterAllowAction, "Accept", "Return")
	v.oneOf("spec.iptablesMangleAllowAction", s.IptablesMangleAllowAction, "Accept", "Return")
	v.oneOf("spec.iptablesFilterDenyAction", s.IptablesFilterDenyAction, "Drop", "Reject")
	v.oneOf("spec.nftablesFilterAllowAction", s.NftablesFilterAllowAction, "Accept", "Return")
	v.oneOf("spec.nftablesMangleAllowAction", s.NftablesMangleAllowAction, "Accept", "Return")
	v.oneOf("spec.nftablesFilterDenyAction", s.NftablesFilterDenyAction, "Drop", "Reject")
	v.oneOf("spec.logSeverityScreen", s.LogSeverityScreen, logLevels...)
	v.oneOf("spec.logSeverityFile", s.LogSeverityFile, logLevels...)
	// Calico documents None for syslog ("no logging to syslog").
	v.oneOf("spec.logSeveritySys", s.LogSeveritySys, append([]string{"None"}, logLevels...)...)
	if s.BPFLogLevel != "" {
		v.oneOfFold("spec.bpfLogLevel", s.BPFLogLevel, "Off", "Info", "Debug")
	}
	if s.RouteSource != "" {
		v.oneOfFold("spec.routeSource", s.RouteSource, "WorkloadIPs", "CalicoIPAM")
	}
	v.oneOf("spec.ipForwarding", s.IPForwarding, "Enabled", "Disabled")
	if s.ServiceLoopPrevention != "" {
		v.oneOfFold("spec.serviceLoopPrevention", s.ServiceLoopPrevention, "Drop", "Reject", "Disabled")
	}
	v.optionalOneOf("spec.nftablesMode", s.NFTablesMode, "Enabled", "Disabled", "Auto")
	v.optionalOneOf("spec.programClusterRoutes", s.ProgramClusterRoutes, "Enabled", "Disabled")
	v.optionalOneOf("spec.floatingIPs", s.FloatingIPs, "Enabled", "Disabled")
	v.optionalOneOf("spec.natOutgoingExclusions", s.NATOutgoingExclusions, "IPPoolsOnly", "IPPoolsAndHostIPs")
	v.optionalOneOf("spec.bpfConnectTimeLoadBalancing", s.BPFConnectTimeLoadBalancing, "TCP", "Enabled", "Disabled")
	v.optionalOneOf("spec.bpfHostNetworkedNATWithoutCTLB", s.BPFHostNetworkedNATWithoutCTLB, "Enabled", "Disabled")
	v.optionalOneOf("spec.awsSrcDstCheck", s.AWSSrcDstCheck, "DoNothing", "Enable", "Disable")
	v.optionalOneOf("spec.windowsManageFirewallRules", s.WindowsManageFirewallRules, "Enabled", "Disabled")
	if s.BPFExternalServiceMode != "" {
		v.oneOfFold("spec.bpfExternalServiceMode", s.BPFExternalServiceMode, "Tunnel", "DSR")
	}
	if s.WorkloadSourceSpoofing != "" {
		v.oneOfFold("spec.workloadSourceSpoofing", s.WorkloadSourceSpoofing, "Disabled", "Any")
	}

	// Ports and MTUs.
	v.port("spec.healthPort", s.HealthPort)
	v.port("spec.prometheusMetricsPort", s.PrometheusMetricsPort)
	v.port("spec.metadataPort", s.MetadataPort)
	v.port("spec.vxlanPort", s.VXLANPort)
	v.port("spec.wireguardListeningPort", s.WireguardListeningPort)
	v.port("spec.wireguardListeningPortV6", s.WireguardListeningPortV6)
	v.intRange("spec.debugPort", s.DebugPort, 0, 65535)
	v.intRange("spec.vxlanVNI", s.VXLANVNI, 0, 1<<24-1)
	v.mtu("spec.ipipMTU", s.IPIPMTU, 576)
	v.mtu("spec.vxlanMTU", s.VXLANMTU, 576)
	v.mtu("spec.vxlanMTUV6", s.VXLANMTUV6, 1280)
	v.mtu("spec.wireguardMTU", s.WireguardMTU, 576)
	v.mtu("spec.wireguardMTUV6", s.WireguardMTUV6, 1280)
	v.intRange("spec.deviceRouteProtocol", s.DeviceRouteProtocol, 0, 255)
	v.intRange("spec.maxIpsetSize", s.MaxIpsetSize, 1, 1<<31-1)
	for _, f := range []struct {
		path string
		p    *int
	}{{"spec.ipv4NormalRoutePriority", s.IPv4NormalRoutePriority}, {"spec.ipv6NormalRoutePriority", s.IPv6NormalRoutePriority},
		{"spec.ipv4ElevatedRoutePriority", s.IPv4ElevatedRoutePriority}, {"spec.ipv6ElevatedRoutePriority", s.IPv6ElevatedRoutePriority}} {
		v.intRange(f.path, f.p, 1, 2147483646)
	}
	if s.IptablesMarkMask != nil && *s.IptablesMarkMask == 0 {
		v.add("spec.iptablesMarkMask", "0 leaves Felix no mark bits: use a mask like 0xffff0000")
	}

	// Intervals: 0 disables the refresh, negative is meaningless.
	v.nonNegativeDuration("spec.routeRefreshInterval", s.RouteRefreshInterval)
	v.nonNegativeDuration("spec.interfaceRefreshInterval", s.InterfaceRefreshInterval)
	v.nonNegativeDuration("spec.iptablesRefreshInterval", s.IptablesRefreshInterval)
	v.nonNegativeDuration("spec.iptablesPostWriteCheckInterval", s.IptablesPostWriteCheckInterval)
	v.nonNegativeDuration("spec.iptablesLockTimeout", s.IptablesLockTimeout)
	v.nonNegativeDuration("spec.iptablesLockProbeInterval", s.IptablesLockProbeInterval)
	v.nonNegativeDuration("spec.ipsetsRefreshInterval", s.IpsetsRefreshInterval)
	v.nonNegativeDuration("spec.netlinkTimeout", s.NetlinkTimeout)
	v.nonNegativeDuration("spec.reportingInterval", s.ReportingInterval)
	v.nonNegativeDuration("spec.reportingTTL", s.ReportingTTL)
	v.nonNegativeDuration("spec.endpointReportingDelay", s.EndpointReportingDelay)
	v.nonNegativeDuration("spec.nftablesRefreshInterval", s.NftablesRefreshInterval)

	// Addresses.
	if s.NATOutgoingAddress != "" {
		v.ip("spec.natOutgoingAddress", s.NATOutgoingAddress, 4)
	}
	if s.DeviceRouteSourceAddress != "" {
		v.ip("spec.deviceRouteSourceAddress", s.DeviceRouteSourceAddress, 4)
	}
	if s.DeviceRouteSourceAddressIPv6 != "" {
		v.ip("spec.deviceRouteSourceAddressIPv6", s.DeviceRouteSourceAddressIPv6, 6)
	}
	if s.ExternalNodesCIDRList != nil {
		for i, c := range *s.ExternalNodesCIDRList {
			if p, ok := v.cidr(idx("spec.externalNodesList", i), c, false); ok && !p.Addr().Is4() {
				v.add(idx("spec.externalNodesList", i), "%q is not an IPv4 CIDR", c)
			}
		}
	}
	if s.HealthHost != nil && *s.HealthHost == "" {
		v.add("spec.healthHost", "must not be empty")
	}
	if s.PrometheusMetricsHost != "" && !prometheusHostRegex.MatchString(s.PrometheusMetricsHost) {
		v.add("spec.prometheusMetricsHost", "%q is not a valid host: an IP address or a host name of at most 64 characters", s.PrometheusMetricsHost)
	}

	// Ports lists.
	for _, list := range []struct {
		path  string
		ports *[]ProtoPort
	}{{"spec.failsafeInboundHostPorts", s.FailsafeInboundHostPorts}, {"spec.failsafeOutboundHostPorts", s.FailsafeOutboundHostPorts}} {
		if list.ports == nil {
			continue
		}
		for i, pp := range *list.ports {
			path := idx(list.path, i)
			if pp.Protocol != "" {
				v.oneOfFold(path+".protocol", pp.Protocol, "TCP", "UDP", "SCTP")
			}
			if pp.Net != "" {
				v.cidr(path+".net", pp.Net, false)
			}
		}
	}
	if s.KubeNodePortRanges != nil {
		// iptables' multiport match takes 15 ports, a range counting two.
		if len(*s.KubeNodePortRanges) > 7 {
			v.add("spec.kubeNodePortRanges", "has %d ranges, at most 7 allowed", len(*s.KubeNodePortRanges))
		}
		for i, p := range *s.KubeNodePortRanges {
			if p.Name != "" {
				v.add(idx("spec.kubeNodePortRanges", i), "%q: named ports are not allowed here", p.Name)
			}
		}
	}
	if s.NATPortRange != nil && s.NATPortRange.Name != "" {
		v.add("spec.natPortRange", "%q: a named port is not allowed here", s.NATPortRange.Name)
	}

	// Route tables.
	if s.RouteTableRange != nil && s.RouteTableRanges != nil {
		v.add("spec.routeTableRange", "cannot be combined with routeTableRanges (routeTableRange is deprecated)")
	}
	if r := s.RouteTableRange; r != nil && (r.Min < 1 || r.Max < r.Min || r.Max > 250) {
		v.add("spec.routeTableRange", "%d-%d is not a range within 1-250", r.Min, r.Max)
	}
	if s.RouteTableRanges != nil {
		total := 0
		for i, r := range *s.RouteTableRanges {
			path := idx("spec.routeTableRanges", i)
			switch {
			case r.Min < 1:
				v.add(path, "min %d must be at least 1", r.Min)
			case r.Max < r.Min:
				v.add(path, "min %d is greater than max %d", r.Min, r.Max)
			case int64(r.Max) > 0xffffffff:
				v.add(path, "max %d is above the highest route table 4294967295", r.Max)
			default:
				total += r.Max - r.Min + 1
			}
		}
		if total > 0xffff {
			v.add("spec.routeTableRanges", "targets %d tables, at most 65535 allowed", total)
		}
	}

	// Names and patterns.
	const regionPrefix = "openstack-region-"
	if r := s.OpenstackRegion; r != "" {
		if len(r) > k8svalidation.DNS1123LabelMaxLength-len(regionPrefix) || !isLabel(r) {
			v.add("spec.openstackRegion", "%q is not a valid region: %s, at most %d characters", r, labelNameRules,
				k8svalidation.DNS1123LabelMaxLength-len(regionPrefix))
		}
	}
	if f := s.IptablesNATOutgoingInterfaceFilter; f != "" && !ifaceFilterRegex.MatchString(f) {
		v.add("spec.iptablesNATOutgoingInterfaceFilter", "%q is not a valid interface filter (1-15 of letters, digits, ':', '.', '_', '+', '-')", f)
	}
	if n := s.WireguardInterfaceName; n != "" && !interfaceRegex.MatchString(n) {
		v.add("spec.wireguardInterfaceName", "%q is not a valid interface name", n)
	}
	v.regexpField("spec.mtuIfacePattern", s.MTUIfacePattern)
	v.regexpField("spec.logDebugFilenameRegex", s.LogDebugFilenameRegex)
	v.regexpField("spec.bpfDataIfacePattern", s.BPFDataIfacePattern)
	v.regexpField("spec.bpfL3IfacePattern", s.BPFL3IfacePattern)
	v.regexpField("spec.bpfDisableGROForIfaces", s.BPFDisableGROForIfaces)
	for i, part := range strings.Split(s.InterfaceExclude, ",") {
		// "/regex/" entries are regular expressions, others literal names.
		if len(part) > 1 && strings.HasPrefix(part, "/") && strings.HasSuffix(part, "/") {
			if _, err := regexp.Compile(part[1 : len(part)-1]); err != nil {
				v.add("spec.interfaceExclude", "entry %d %q is not a valid regular expression: %v", i+1, part, err)
			}
		}
	}
	for i, h := range s.HealthTimeoutOverrides {
		if h.Timeout.Duration < 0 {
			v.add(idx("spec.healthTimeoutOverrides", i)+".timeout", "%q must not be negative", h.Timeout.Duration.String())
		}
	}
}
