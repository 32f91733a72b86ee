package v3

import (
	"net/netip"
	"strings"

	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
)

// policyView is what NetworkPolicy and GlobalNetworkPolicy share.
type policyView struct {
	global               bool
	tier                 string
	ingress, egress      []Rule
	types                []PolicyType
	selector, saSelector string
	nsSelector           string
	hints                []string
	doNotTrack, preDNAT  bool
	applyOnForward       bool
}

const (
	protocolPortsMsg = "rules that specify ports must set protocol to TCP, UDP or SCTP"
	globalOnlyInNS   = "global() can only be used in a rule's namespaceSelector"
)

func (v *validator) globalPolicy(s *GlobalNetworkPolicySpec) {
	v.policy(policyView{global: true, tier: s.Tier, ingress: s.Ingress, egress: s.Egress, types: s.Types,
		selector: s.Selector, saSelector: s.ServiceAccountSelector, nsSelector: s.NamespaceSelector, hints: s.PerformanceHints,
		doNotTrack: s.DoNotTrack, preDNAT: s.PreDNAT, applyOnForward: s.ApplyOnForward})
}

func (v *validator) policy(p policyView) {
	if p.tier != "" && !isLabel(p.tier) {
		v.add("spec.tier", "%q is not a valid tier name: %s", p.tier, labelNameRules)
	}
	seen := map[PolicyType]bool{}
	for i, t := range p.types {
		path := idx("spec.types", i)
		if t != PolicyTypeIngress && t != PolicyTypeEgress {
			v.add(path, "%q is not one of Ingress, Egress", t)
		}
		if seen[t] {
			v.add(path, "%q is listed twice", t)
		}
		seen[t] = true
	}
	for _, sel := range []struct{ path, s string }{{"spec.selector", p.selector}, {"spec.serviceAccountSelector", p.saSelector}, {"spec.namespaceSelector", p.nsSelector}} {
		v.selector(sel.path, sel.s)
		if strings.Contains(sel.s, "global(") {
			v.add(sel.path, "%q: %s", sel.s, globalOnlyInNS)
		}
	}
	for i, h := range p.hints {
		v.oneOf(idx("spec.performanceHints", i), h, "AssumeNeededOnEveryNode")
	}
	if p.global {
		if p.doNotTrack && p.preDNAT {
			v.add("spec.preDNAT", "preDNAT and doNotTrack cannot both be true")
		}
		if p.preDNAT && len(p.egress) > 0 {
			v.add("spec.egress", "a preDNAT policy cannot have egress rules")
		}
		if p.preDNAT && seen[PolicyTypeEgress] {
			v.add("spec.types", "a preDNAT policy cannot have type Egress")
		}
		if (p.doNotTrack || p.preDNAT) && !p.applyOnForward {
			v.add("spec.applyOnForward", "must be true when preDNAT or doNotTrack is true")
		}
	}
	for i := range p.ingress {
		v.rule(idx("spec.ingress", i), &p.ingress[i], false, p.global)
	}
	for i := range p.egress {
		v.rule(idx("spec.egress", i), &p.egress[i], true, p.global)
	}
}

var ruleActions = []string{string(ActionAllow), string(ActionDeny), string(ActionLog), string(ActionPass)}

// protocol checks a rule protocol: a name Calico knows (case-sensitive) or a
// number 1-255 (0 is refused, as Calico does).
func (v *validator) protocol(path string, p *Protocol) {
	if p == nil {
		return
	}
	if p.Name != "" {
		if _, ok := protocolNames[p.Name]; !ok {
			v.add(path, "%q is not a valid protocol: use TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite (case-sensitive) or a number 1-255", p.Name)
		}
	} else if p.Num == 0 {
		v.add(path, "0 is not a valid protocol number: use 1-255")
	}
}

func (v *validator) icmp(path string, f *ICMPFields) {
	if f == nil {
		return
	}
	if f.Type != nil && (*f.Type < 0 || *f.Type > 254) {
		v.add(path+".type", "%d is out of range 0-254", *f.Type)
	}
	if f.Code != nil {
		if *f.Code < 0 || *f.Code > 255 {
			v.add(path+".code", "%d is out of range 0-255", *f.Code)
		}
		if f.Type == nil {
			v.add(path+".code", "an ICMP code needs an ICMP type")
		}
	}
}

func isICMP(p *Protocol, v6 bool) bool {
	if p == nil {
		return false
	}
	n, ok := p.Number()
	if v6 {
		return ok && n == 58
	}
	return ok && n == 1
}

func (v *validator) rule(path string, r *Rule, egress, global bool) {
	if r.Action == "" {
		v.add(path+".action", "an action is required: Allow, Deny, Log or Pass")
	} else {
		v.oneOf(path+".action", string(r.Action), ruleActions...)
	}
	if r.IPVersion != nil && *r.IPVersion != 4 && *r.IPVersion != 6 {
		v.add(path+".ipVersion", "%d is not one of 4, 6", *r.IPVersion)
	}
	v.protocol(path+".protocol", r.Protocol)
	v.protocol(path+".notProtocol", r.NotProtocol)

	if r.Protocol == nil || !r.Protocol.SupportsPorts() {
		for _, ports := range []struct {
			path string
			list []Port
		}{{".source.ports", r.Source.Ports}, {".source.notPorts", r.Source.NotPorts},
			{".destination.ports", r.Destination.Ports}, {".destination.notPorts", r.Destination.NotPorts}} {
			if len(ports.list) > 0 {
				v.add(path+ports.path, "%s", protocolPortsMsg)
			}
		}
	}
	v.icmp(path+".icmp", r.ICMP)
	v.icmp(path+".notICMP", r.NotICMP)
	if r.ICMP != nil && !isICMP(r.Protocol, false) && !isICMP(r.Protocol, true) {
		v.add(path+".icmp", "rules that specify ICMP fields must set protocol to ICMP or ICMPv6")
	}
	if r.IPVersion != nil {
		if (isICMP(r.Protocol, false) || isICMP(r.NotProtocol, false)) && *r.IPVersion != 4 {
			v.add(path+".ipVersion", "%d does not match protocol ICMP: must be 4", *r.IPVersion)
		}
		if (isICMP(r.Protocol, true) || isICMP(r.NotProtocol, true)) && *r.IPVersion != 6 {
			v.add(path+".ipVersion", "%d does not match protocol ICMPv6: must be 6", *r.IPVersion)
		}
	}

	// Nets: valid, one IP family per rule, matching ipVersion.
	var seen4, seen6 bool
	for _, nets := range []struct {
		path string
		list []string
	}{{".source.nets", r.Source.Nets}, {".source.notNets", r.Source.NotNets},
		{".destination.nets", r.Destination.Nets}, {".destination.notNets", r.Destination.NotNets}} {
		for i, n := range nets.list {
			np := idx(path+nets.path, i)
			p, ok := v.cidr(np, n, false)
			if !ok {
				continue
			}
			is4 := p.Addr().Is4()
			if r.IPVersion != nil && ((is4 && *r.IPVersion != 4) || (!is4 && *r.IPVersion != 6)) {
				v.add(np, "%q does not match the rule's ipVersion %d", n, *r.IPVersion)
			} else if (is4 && seen6) || (!is4 && seen4) {
				v.add(np, "%q mixes IP families: a rule's CIDRs must all be IPv4 or all IPv6", n)
			}
			seen4, seen6 = seen4 || is4, seen6 || !is4
		}
	}
	v.entity(path+".source", &r.Source, global)
	v.entity(path+".destination", &r.Destination, global)

	if r.Source.Services != nil && egress {
		v.add(path+".source.services", "not allowed in an egress rule's source")
	}
	if r.Destination.Services != nil && !egress {
		v.add(path+".destination.services", "not allowed in an ingress rule's destination")
	}
	if r.Destination.Services != nil && len(r.Destination.Ports) > 0 {
		v.add(path+".destination.ports", "cannot be combined with services: service rules use the endpoints' ports")
	}
	if r.Destination.Services != nil && len(r.Destination.NotPorts) > 0 {
		v.add(path+".destination.notPorts", "cannot be combined with services: service rules use the endpoints' ports")
	}
	if h := r.HTTP; h != nil {
		if r.Action != ActionAllow {
			v.add(path+".http", "only allowed in Allow rules")
		}
		if egress {
			v.add(path+".http", "not allowed in egress rules")
		}
		if r.Protocol != nil && !(r.Protocol.Name == "TCP" || (r.Protocol.Name == "" && r.Protocol.Num == 6)) {
			v.add(path+".protocol", "%q: rules with http match need protocol TCP or none", r.Protocol.String())
		}
		methods := map[string]bool{}
		for i, m := range h.Methods {
			if methods[m] {
				v.add(idx(path+".http.methods", i), "%q is listed twice", m)
			}
			methods[m] = true
		}
		for i, hp := range h.Paths {
			pp := idx(path+".http.paths", i)
			val := hp.Exact
			switch {
			case hp.Exact != "" && hp.Prefix != "":
				v.add(pp, "set exact or prefix, not both")
			case hp.Exact == "" && hp.Prefix == "":
				v.add(pp, "one of exact or prefix is required")
			}
			if val == "" {
				val = hp.Prefix
			}
			if val != "" && (!strings.HasPrefix(val, "/") || strings.ContainsAny(val, "? #")) {
				v.add(pp, "%q is not a valid path: it must start with '/' and contain no '?', '#' or space", val)
			}
		}
	}
	if r.Metadata != nil {
		v.annotations(path+".metadata.annotations", r.Metadata.Annotations)
	}
}

func (v *validator) entity(path string, e *EntityRule, global bool) {
	v.selector(path+".selector", e.Selector)
	v.selector(path+".notSelector", e.NotSelector)
	v.selector(path+".namespaceSelector", e.NamespaceSelector)
	for _, sel := range []struct{ path, s string }{{".selector", e.Selector}, {".notSelector", e.NotSelector}} {
		if strings.Contains(sel.s, "global(") {
			v.add(path+sel.path, "%q: %s", sel.s, globalOnlyInNS)
		}
	}
	if strings.Contains(e.NamespaceSelector, "global(") && strings.Join(strings.Fields(e.NamespaceSelector), "") != "global()" {
		v.add(path+".namespaceSelector", "%q: global() cannot be combined with other selectors", e.NamespaceSelector)
	}
	for i, p := range e.Ports {
		v.rulePort(idx(path+".ports", i), p)
	}
	for i, p := range e.NotPorts {
		v.rulePort(idx(path+".notPorts", i), p)
	}
	if sa := e.ServiceAccounts; sa != nil {
		for i, n := range sa.Names {
			v.resourceName(idx(path+".serviceAccounts.names", i), n)
		}
		v.selector(path+".serviceAccounts.selector", sa.Selector)
	}
	if s := e.Services; s != nil {
		sp := path + ".services"
		if s.Name == "" {
			v.add(sp+".name", "a service name is required")
		}
		if global && s.Namespace == "" {
			v.add(sp+".namespace", "a namespace is required in a GlobalNetworkPolicy")
		}
		if e.NamespaceSelector != "" {
			v.add(sp, "cannot be combined with namespaceSelector")
		}
		if e.Selector != "" || e.NotSelector != "" {
			v.add(sp, "cannot be combined with selector or notSelector")
		}
		if e.ServiceAccounts != nil {
			v.add(sp, "cannot be combined with serviceAccounts")
		}
		if len(e.Nets) > 0 || len(e.NotNets) > 0 {
			v.add(sp, "cannot be combined with nets or notNets: service rules use the endpoints' addresses")
		}
	}
}

func (v *validator) rulePort(path string, p Port) {
	switch {
	case p.Name != "":
		if msgs := k8svalidation.IsValidPortName(p.Name); len(msgs) > 0 {
			v.add(path, "%q is not a valid port name: %s", p.Name, msgs[0])
		}
	case p.MinPort == 0 || p.MaxPort < p.MinPort:
		v.add(path, "%q is not a valid port or range: ports are 1-65535", p.String())
	}
}

// --- endpoints ---------------------------------------------------------------

func (v *validator) endpointPort(path, name string, proto Protocol, port uint16, nameRequired bool) {
	switch {
	case name == "" && nameRequired:
		v.add(path+".name", "a port name is required")
	case name != "":
		if msgs := k8svalidation.IsValidPortName(name); len(msgs) > 0 {
			v.add(path+".name", "%q is not a valid port name: %s", name, msgs[0])
		}
	}
	if !proto.SupportsPorts() {
		v.add(path+".protocol", "%q does not have ports: use TCP, UDP or SCTP", proto.String())
	}
	if port == 0 {
		v.add(path+".port", "0 is out of range 1-65535")
	}
}

func (v *validator) workloadEndpoint(w *WorkloadEndpoint) {
	s := &w.Spec
	if s.Node == "" {
		v.add("spec.node", "a node name is required")
	}
	v.resourceName("spec.node", s.Node)
	if s.Orchestrator == "" {
		v.add("spec.orchestrator", "an orchestrator is required (k8s for Kubernetes pods)")
	}
	v.resourceName("spec.orchestrator", s.Orchestrator)
	if s.Orchestrator == "k8s" && s.Pod == "" {
		v.add("spec.pod", "a pod name is required when orchestrator is k8s")
	}
	if s.Orchestrator != "k8s" && s.Orchestrator != "" && s.Workload == "" {
		v.add("spec.workload", "a workload name is required when orchestrator is not k8s")
	}
	v.resourceName("spec.pod", s.Pod)
	v.resourceName("spec.workload", s.Workload)
	v.resourceName("spec.endpoint", s.Endpoint)
	v.resourceName("spec.serviceAccountName", s.ServiceAccountName)
	if s.ContainerID != "" && !containerIDRegex.MatchString(s.ContainerID) {
		v.add("spec.containerID", "%q is not a valid container ID: letters, digits and '-'", s.ContainerID)
	}
	if s.InterfaceName == "" {
		v.add("spec.interfaceName", "an interface name is required")
	} else if !interfaceRegex.MatchString(s.InterfaceName) {
		v.add("spec.interfaceName", "%q is not a valid interface name: 1-15 of letters, digits, '_', '.', '-'", s.InterfaceName)
	}
	var networks []netip.Prefix
	for i, n := range s.IPNetworks {
		path := idx("spec.ipNetworks", i)
		p, ok := v.cidr(path, n, true)
		if !ok {
			continue
		}
		if !p.IsSingleIP() {
			v.add(path, "%q holds more than one address: use a /32 (IPv4) or /128 (IPv6)", n)
		}
		networks = append(networks, p)
	}
	for i, nat := range s.IPNATs {
		path := idx("spec.ipNATs", i)
		in, okIn := v.ip(path+".internalIP", nat.InternalIP, 0)
		ex, okEx := v.ip(path+".externalIP", nat.ExternalIP, 0)
		if okIn && okEx && in.Is4() != ex.Is4() {
			v.add(path+".externalIP", "%q is not of the same IP family as internalIP %q", nat.ExternalIP, nat.InternalIP)
		}
		if okIn {
			inside := false
			for _, p := range networks {
				inside = inside || p.Contains(in)
			}
			if !inside {
				v.add(path+".internalIP", "%q is not one of the endpoint's ipNetworks", nat.InternalIP)
			}
		}
	}
	if s.IPv4Gateway != "" {
		v.ip("spec.ipv4Gateway", s.IPv4Gateway, 4)
	}
	if s.IPv6Gateway != "" {
		v.ip("spec.ipv6Gateway", s.IPv6Gateway, 6)
	}
	for i, p := range s.Profiles {
		v.resourceName(idx("spec.profiles", i), p)
	}
	v.mac("spec.mac", s.MAC)
	for i, p := range s.Ports {
		path := idx("spec.ports", i)
		// A port without a name is only useful as a host port mapping.
		v.endpointPort(path, p.Name, p.Protocol, p.Port, p.HostPort == 0)
		if p.HostIP != "" {
			v.ip(path+".hostIP", p.HostIP, 0)
		}
	}
	v.nets("spec.allowSpoofedSourcePrefixes", s.AllowSpoofedSourcePrefixes)
}

func (v *validator) hostEndpoint(s *HostEndpointSpec) {
	if s.Node == "" {
		v.add("spec.node", "a node name is required")
	}
	v.resourceName("spec.node", s.Node)
	switch {
	case s.InterfaceName == "" && len(s.ExpectedIPs) == 0:
		v.add("spec.interfaceName", "one of interfaceName or expectedIPs is required")
	case s.InterfaceName != "" && s.InterfaceName != "*" && !interfaceRegex.MatchString(s.InterfaceName):
		v.add("spec.interfaceName", "%q is not a valid interface name: 1-15 of letters, digits, '_', '.', '-', or \"*\" for all", s.InterfaceName)
	}
	for i, ip := range s.ExpectedIPs {
		v.ip(idx("spec.expectedIPs", i), ip, 0)
	}
	for i, p := range s.Profiles {
		v.resourceName(idx("spec.profiles", i), p)
	}
	for i, p := range s.Ports {
		v.endpointPort(idx("spec.ports", i), p.Name, p.Protocol, p.Port, true)
	}
}
