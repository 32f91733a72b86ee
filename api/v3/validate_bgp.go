package v3

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// ParsePeerIP parses a BGPPeer peerIP: an address with an optional port, as
// Calico accepts it: "10.0.0.1", "10.0.0.1:1179", "fd00::1" or
// "[fd00::1]:1179". Port 0 means "not given" (use the peer's listenPort or
// 179); an explicit port must be 1-65535. Zones are refused.
func ParsePeerIP(s string) (netip.Addr, uint16, error) {
	bad := func(why string) (netip.Addr, uint16, error) {
		return netip.Addr{}, 0, fmt.Errorf("%q is not a valid peer IP: %s", s, why)
	}
	if a, err := netip.ParseAddr(s); err == nil {
		// A bare address, including an IPv6 one whose last group looks like
		// a port ("fd00::1:1179" is an address).
		if a.Zone() != "" {
			return bad("zones are not allowed")
		}
		return a, 0, nil
	}
	var host, port string
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.Index(s, "]")
		if end < 0 || !strings.HasPrefix(s[end+1:], ":") {
			return bad(`write an IPv6 address with a port as "[<IPv6>]:<port>"`)
		}
		host, port = s[1:end], s[end+2:]
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return bad("the part in brackets must be an IPv6 address")
		}
	case strings.Count(s, ":") == 1:
		host, port, _ = strings.Cut(s, ":")
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is4() {
			return bad(`expected "<IPv4>", "<IPv4>:<port>", "<IPv6>" or "[<IPv6>]:<port>"`)
		}
	default:
		return bad(`expected "<IPv4>", "<IPv4>:<port>", "<IPv6>" or "[<IPv6>]:<port>"`)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return bad("the port must be 1-65535")
	}
	return netip.MustParseAddr(host), uint16(n), nil
}

func (v *validator) bgpPeer(s *BGPPeerSpec) {
	v.resourceName("spec.node", s.Node)
	if s.Node != "" && s.NodeSelector != "" {
		v.add("spec.nodeSelector", "%q cannot be combined with node %q: use one of them", s.NodeSelector, s.Node)
	}
	v.selector("spec.nodeSelector", s.NodeSelector)
	v.selector("spec.peerSelector", s.PeerSelector)
	v.selector("spec.localWorkloadSelector", s.LocalWorkloadSelector)

	var peerAddr netip.Addr
	if s.PeerIP != "" {
		a, _, err := ParsePeerIP(s.PeerIP)
		if err != nil {
			v.add("spec.peerIP", "%s", err.Error())
		}
		peerAddr = a
	}
	switch {
	case s.PeerIP != "" && s.PeerSelector != "":
		v.add("spec.peerSelector", "%q cannot be combined with peerIP %q: use one of them", s.PeerSelector, s.PeerIP)
	case s.PeerIP != "" && s.LocalWorkloadSelector != "":
		v.add("spec.localWorkloadSelector", "%q cannot be combined with peerIP %q: use one of them", s.LocalWorkloadSelector, s.PeerIP)
	case s.PeerSelector != "" && s.LocalWorkloadSelector != "":
		v.add("spec.localWorkloadSelector", "%q cannot be combined with peerSelector %q: use one of them", s.LocalWorkloadSelector, s.PeerSelector)
	case s.PeerIP == "" && s.PeerSelector == "" && s.LocalWorkloadSelector == "":
		v.add("spec.peerIP", "one of peerIP or peerSelector is required")
	}
	switch {
	case s.PeerSelector != "" && s.ASNumber != 0:
		v.add("spec.asNumber", "%d must not be set with peerSelector: the AS number comes from the selected nodes", s.ASNumber)
	case s.PeerIP != "" && s.ASNumber == 0:
		v.add("spec.asNumber", "an AS number is required with peerIP")
	case s.LocalWorkloadSelector != "" && s.ASNumber == 0:
		v.add("spec.asNumber", "an AS number is required with localWorkloadSelector")
	}
	if s.LocalASNumber != nil {
		v.asNumber("spec.localASNumber", *s.LocalASNumber)
	}
	v.positiveDuration("spec.keepaliveTime", s.KeepaliveTime)
	v.positiveDuration("spec.maxRestartTime", s.MaxRestartTime)
	if s.TTLSecurity != nil && *s.TTLSecurity == 0 {
		v.add("spec.ttlSecurity", "0 is out of range 1-255 (leave it out to disable TTL security)")
	}
	v.oneOf("spec.sourceAddress", string(s.SourceAddress), string(SourceAddressUseNodeIP), string(SourceAddressNone))
	v.password("spec.password", s.Password)
	if s.NumAllowedLocalASNumbers != nil && *s.NumAllowedLocalASNumbers < 0 {
		v.add("spec.numAllowedLocalASNumbers", "%d must not be negative", *s.NumAllowedLocalASNumbers)
	}
	if s.NextHopMode != nil {
		if *s.NextHopMode == "" {
			v.add("spec.nextHopMode", `"" is not one of Auto, Self, Keep`)
		}
		v.oneOf("spec.nextHopMode", string(*s.NextHopMode), string(NextHopModeAuto), string(NextHopModeSelf), string(NextHopModeKeep))
		if s.KeepOriginalNextHop {
			v.add("spec.keepOriginalNextHop", "true cannot be combined with nextHopMode (keepOriginalNextHop is deprecated; use nextHopMode: Keep)")
		}
	}
	if s.ReversePeering != nil {
		if *s.ReversePeering == "" {
			v.add("spec.reversePeering", `"" is not one of Auto, Manual`)
		}
		v.oneOf("spec.reversePeering", string(*s.ReversePeering), string(ReversePeeringAuto), string(ReversePeeringManual))
	}
	if s.ReachableBy != "" {
		gw, ok := v.ip("spec.reachableBy", s.ReachableBy, 0)
		switch {
		case s.PeerIP == "":
			v.add("spec.reachableBy", "%q needs peerIP: it is the gateway to the peer", s.ReachableBy)
		case ok && peerAddr.IsValid() && gw.Is4() != peerAddr.Is4():
			v.add("spec.reachableBy", "%q is not of the same IP family as peerIP %q", s.ReachableBy, s.PeerIP)
		}
	}
	for i, f := range s.Filters {
		v.resourceName(idx("spec.filters", i), f)
	}
	v.oneOf("spec.failureDetectionMode", s.FailureDetectionMode, "None", "BFDIfDirectlyConnected")
	v.oneOf("spec.restartMode", s.RestartMode, "GracefulRestart", "LongLivedGracefulRestart")
	v.oneOf("spec.birdGatewayMode", s.BIRDGatewayMode, "Recursive", "DirectIfDirectlyConnected")
}

var (
	standardCommunity = regexp.MustCompile(`^(\d+):(\d+)$`)
	largeCommunity    = regexp.MustCompile(`^(\d+):(\d+):(\d+)$`)
)

// community checks "aa:nn" (16-bit parts) or "aa:nn:mm" (32-bit parts). It
// returns false, without reporting, when s has neither shape.
func (v *validator) community(path, s string) bool {
	bits := 16
	if !standardCommunity.MatchString(s) {
		if !largeCommunity.MatchString(s) {
			return false
		}
		bits = 32
	}
	for _, part := range strings.Split(s, ":") {
		if _, err := strconv.ParseUint(part, 10, bits); err != nil {
			v.add(path, "%q is not a valid community: each part of %s must fit in %d bits", s,
				map[int]string{16: "aa:nn", 32: "aa:nn:mm"}[bits], bits)
			return true
		}
	}
	return true
}

var logLevels = []string{"Trace", "Debug", "Info", "Warning", "Error", "Fatal"}

func (v *validator) bgpConfig(c *BGPConfiguration) {
	s := &c.Spec
	if c.Name != DefaultConfigName {
		// Calico's client refuses these on per-node configurations: they
		// are cluster-wide by nature.
		onlyDefault := func(field string, set bool) {
			if set {
				v.add("spec."+field, "can only be set on the %q BGPConfiguration", DefaultConfigName)
			}
		}
		onlyDefault("nodeToNodeMeshEnabled", s.NodeToNodeMeshEnabled != nil)
		onlyDefault("asNumber", s.ASNumber != nil)
		onlyDefault("serviceLoadBalancerIPs", len(s.ServiceLoadBalancerIPs) > 0)
		onlyDefault("serviceExternalIPs", len(s.ServiceExternalIPs) > 0)
		onlyDefault("serviceClusterIPs", len(s.ServiceClusterIPs) > 0)
		onlyDefault("nodeMeshPassword", s.NodeMeshPassword != nil)
		onlyDefault("nodeMeshMaxRestartTime", s.NodeMeshMaxRestartTime != nil)
	}
	v.oneOf("spec.logSeverityScreen", s.LogSeverityScreen, logLevels...)
	if s.ASNumber != nil {
		v.asNumber("spec.asNumber", *s.ASNumber)
	}
	for _, blocks := range []struct {
		name string
		list []ServiceIPBlock
	}{{"serviceLoadBalancerIPs", s.ServiceLoadBalancerIPs}, {"serviceExternalIPs", s.ServiceExternalIPs}, {"serviceClusterIPs", s.ServiceClusterIPs}} {
		for i, b := range blocks.list {
			v.cidr(idx("spec."+blocks.name, i)+".cidr", b.CIDR, true)
		}
	}
	names := map[string]bool{}
	for i, c := range s.Communities {
		path := idx("spec.communities", i)
		switch {
		case c.Name == "":
			v.add(path+".name", "a name is required")
		case !isSubdomain(c.Name):
			v.add(path+".name", "%q is not a valid name: %s", c.Name, nameRules)
		}
		names[c.Name] = true
		if c.Value == "" {
			v.add(path+".value", "a value is required")
		} else if !v.community(path+".value", c.Value) {
			v.add(path+".value", "%q is not a valid community: use aa:nn or aa:nn:mm", c.Value)
		}
	}
	if len(s.Communities) > 0 && len(s.PrefixAdvertisements) == 0 {
		v.add("spec.communities", "defined but not used: reference them from prefixAdvertisements")
	}
	for i, pa := range s.PrefixAdvertisements {
		path := idx("spec.prefixAdvertisements", i)
		if pa.CIDR == "" {
			v.add(path+".cidr", "a CIDR is required")
		} else {
			v.cidr(path+".cidr", pa.CIDR, false)
		}
		for j, c := range pa.Communities {
			cp := idx(path+".communities", j)
			if !v.community(cp, c) && !names[c] {
				v.add(cp, "%q is neither a community value (aa:nn or aa:nn:mm) nor the name of one in spec.communities", c)
			}
		}
	}
	// listenPort is a uint16, so the decoder already refused anything above
	// 65535 or below 0; 0 means "not set" (179).
	meshOff := s.NodeToNodeMeshEnabled != nil && !*s.NodeToNodeMeshEnabled
	if meshOff && s.NodeMeshPassword != nil {
		v.add("spec.nodeMeshPassword", "cannot be set when nodeToNodeMeshEnabled is false")
	}
	if meshOff && s.NodeMeshMaxRestartTime != nil {
		v.add("spec.nodeMeshMaxRestartTime", "cannot be set when nodeToNodeMeshEnabled is false")
	}
	v.password("spec.nodeMeshPassword", s.NodeMeshPassword)
	v.positiveDuration("spec.nodeMeshMaxRestartTime", s.NodeMeshMaxRestartTime)
	if s.BindMode != nil {
		if *s.BindMode == "" {
			v.add("spec.bindMode", `"" is not one of None, NodeIP`)
		}
		v.oneOf("spec.bindMode", *s.BindMode, "None", "NodeIP")
	}
	for i, iface := range s.IgnoredInterfaces {
		if iface == "*" || !ignoredInterfaceRegex.MatchString(iface) {
			v.add(idx("spec.ignoredInterfaces", i), "%q is not a valid interface name or pattern (1-15 of letters, digits, '_', '.', '-', '*'; not just '*')", iface)
		}
	}
	if s.LocalWorkloadPeeringIPV4 != "" {
		v.ip("spec.localWorkloadPeeringIPV4", s.LocalWorkloadPeeringIPV4, 4)
	}
	if s.LocalWorkloadPeeringIPV6 != "" {
		v.ip("spec.localWorkloadPeeringIPV6", s.LocalWorkloadPeeringIPV6, 6)
	}
	if s.ProgramClusterRoutes != nil {
		v.oneOf("spec.programClusterRoutes", *s.ProgramClusterRoutes, "Enabled", "Disabled")
	}
}

// nodeAddress checks Node.spec.bgp.ipv4Address / ipv6Address: the node's
// address with its subnet ("10.0.0.5/24", the subnet drives CrossSubnet) or a
// bare address.
func (v *validator) nodeAddress(path, s string, family int) {
	if s == "" {
		return
	}
	p, err := parseCIDROrIP(s)
	switch {
	case err != nil:
		v.add(path, "%q is not a valid address: use the form %s", s, map[int]string{4: "10.0.0.5/24", 6: "fd00::5/64"}[family])
	case family == 4 && !p.Addr().Is4():
		v.add(path, "%q is not an IPv4 address", s)
	case family == 6 && !p.Addr().Is6():
		v.add(path, "%q is not an IPv6 address", s)
	}
}

var nodeAddressTypes = []string{"CalicoNodeIP", "InternalIP", "ExternalIP"}

func (v *validator) node(n *Node) {
	s := &n.Spec
	if b := s.BGP; b != nil {
		if *b == (NodeBGPSpec{}) {
			v.add("spec.bgp", "must not be empty: leave it out instead")
		}
		if b.ASNumber != nil {
			v.asNumber("spec.bgp.asNumber", *b.ASNumber)
		}
		v.nodeAddress("spec.bgp.ipv4Address", b.IPv4Address, 4)
		v.nodeAddress("spec.bgp.ipv6Address", b.IPv6Address, 6)
		if b.IPv4IPIPTunnelAddr != "" {
			v.ip("spec.bgp.ipv4IPIPTunnelAddr", b.IPv4IPIPTunnelAddr, 4)
		}
		if b.RouteReflectorClusterID != "" {
			if a, err := netip.ParseAddr(b.RouteReflectorClusterID); err != nil || !a.Is4() {
				v.add("spec.bgp.routeReflectorClusterID", "%q is not a valid cluster ID: use an IPv4 dotted quad like 224.0.0.1", b.RouteReflectorClusterID)
			}
		}
	}
	if s.IPv4VXLANTunnelAddr != "" {
		v.ip("spec.ipv4VXLANTunnelAddr", s.IPv4VXLANTunnelAddr, 4)
	}
	if s.IPv6VXLANTunnelAddr != "" {
		v.ip("spec.ipv6VXLANTunnelAddr", s.IPv6VXLANTunnelAddr, 6)
	}
	v.mac("spec.vxlanTunnelMACAddr", s.VXLANTunnelMACAddr)
	v.mac("spec.vxlanTunnelMACAddrV6", s.VXLANTunnelMACAddrV6)
	for i, a := range s.Addresses {
		path := idx("spec.addresses", i)
		v.cidr(path+".address", a.Address, true)
		v.oneOf(path+".type", a.Type, nodeAddressTypes...)
	}
	for i, o := range s.OrchRefs {
		if o.Orchestrator == "" {
			v.add(idx("spec.orchRefs", i)+".orchestrator", "an orchestrator is required")
		}
	}
	if w := s.Wireguard; w != nil {
		if w.InterfaceIPv4Address != "" {
			v.ip("spec.wireguard.interfaceIPv4Address", w.InterfaceIPv4Address, 4)
		}
		if w.InterfaceIPv6Address != "" {
			v.ip("spec.wireguard.interfaceIPv6Address", w.InterfaceIPv6Address, 6)
		}
	}
	for i, iface := range s.Interfaces {
		path := idx("spec.interfaces", i)
		v.nets(path+".addresses", iface.Addresses)
	}
	v.nets("status.podCIDRs", n.Status.PodCIDRs)
}
