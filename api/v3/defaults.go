package v3

import (
	"net/netip"
	"strings"
)

// Defaults Calico applies; exported because the node agent and IPAM fall back
// to the same values for resources stored without them.
const (
	DefaultIPv4BlockSize     = 26
	DefaultIPv6BlockSize     = 122
	DefaultNodeSelector      = "all()"
	DefaultASNumber          = ASNumber(64512)
	DefaultBGPListenPort     = 179
	DefaultLogSeverityScreen = "Info"
	DefaultTierName          = "default"
	// DefaultConfigName is the name of the cluster-wide BGPConfiguration,
	// FelixConfiguration and IPAMConfiguration; per-node ones are
	// NodeConfigPrefix + node name.
	DefaultConfigName = "default"
	NodeConfigPrefix  = "node."
)

// Labels Calico puts on every WorkloadEndpoint so that policy selectors can
// match on them.
const (
	LabelNamespace      = "projectcalico.org/namespace"
	LabelOrchestrator   = "projectcalico.org/orchestrator"
	LabelServiceAccount = "projectcalico.org/serviceaccount"
)

// SetDefaults fills in what Calico's client fills in before a create,
// replace or apply, in place. It is idempotent and leaves every field the
// user set alone, except that a valid IPPool CIDR is rewritten in canonical
// form (FD00:0::/48 becomes fd00::/48), as Calico stores it. Fields it cannot
// interpret (an unparsable CIDR) are left for Validate to report.
func SetDefaults(r Resource) {
	switch x := r.(type) {
	case *IPPool:
		defaultIPPool(&x.Spec)
	case *BGPConfiguration:
		// A per-node configuration gets nothing: any value there would
		// override the cluster-wide one for that node.
		if x.Name != DefaultConfigName {
			return
		}
		s := &x.Spec
		if s.ASNumber == nil {
			as := DefaultASNumber
			s.ASNumber = &as
		}
		if s.NodeToNodeMeshEnabled == nil {
			on := true
			s.NodeToNodeMeshEnabled = &on
		}
		if s.ListenPort == 0 {
			s.ListenPort = DefaultBGPListenPort
		}
		if s.LogSeverityScreen == "" {
			s.LogSeverityScreen = DefaultLogSeverityScreen
		}
	case *NetworkPolicy:
		defaultPolicy(&x.Spec.Tier, x.Spec.Ingress, x.Spec.Egress, &x.Spec.Types)
	case *GlobalNetworkPolicy:
		defaultPolicy(&x.Spec.Tier, x.Spec.Ingress, x.Spec.Egress, &x.Spec.Types)
	case *WorkloadEndpoint:
		// Calico's client stores these labels with every endpoint; policy
		// namespaceSelectors and the serviceaccount match rely on them.
		setLabel := func(k, v string) {
			if v == "" {
				return
			}
			if x.Labels == nil {
				x.Labels = map[string]string{}
			}
			x.Labels[k] = v
		}
		setLabel(LabelNamespace, x.Namespace)
		setLabel(LabelOrchestrator, x.Spec.Orchestrator)
		setLabel(LabelServiceAccount, x.Spec.ServiceAccountName)
	case *IPAMConfiguration:
		if x.Spec.AutoAllocateBlocks == nil {
			on := true
			x.Spec.AutoAllocateBlocks = &on
		}
	}
	// BGPPeer, Node, FelixConfiguration, HostEndpoint, network sets and the
	// IPAM records get no defaults: for them an absent field already means
	// "use the built-in behaviour", and writing values in would pin them.
}

func defaultIPPool(s *IPPoolSpec) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s.CIDR))
	if err == nil && p == p.Masked() {
		s.CIDR = p.String()
	}
	if s.BlockSize == 0 && err == nil {
		if p.Addr().Is4() {
			s.BlockSize = DefaultIPv4BlockSize
		} else {
			s.BlockSize = DefaultIPv6BlockSize
		}
	}
	if s.IPIPMode == "" {
		s.IPIPMode = EncapNever
	}
	if s.VXLANMode == "" {
		s.VXLANMode = EncapNever
	}
	if s.NodeSelector == "" {
		s.NodeSelector = DefaultNodeSelector
	}
	if len(s.AllowedUses) == 0 {
		s.AllowedUses = []IPPoolAllowedUse{IPPoolAllowedUseWorkload, IPPoolAllowedUseTunnel}
	}
	if s.AssignmentMode == nil {
		m := AssignmentModeAutomatic
		s.AssignmentMode = &m
	}
}

// defaultPolicy sets the tier and, when types is empty, derives it from the
// rules as Calico does: no egress rules means Ingress (even with no rules at
// all), egress rules only means Egress, both means both.
func defaultPolicy(tier *string, ingress, egress []Rule, types *[]PolicyType) {
	if *tier == "" {
		*tier = DefaultTierName
	}
	if len(*types) > 0 {
		return
	}
	switch {
	case len(egress) == 0:
		*types = []PolicyType{PolicyTypeIngress}
	case len(ingress) == 0:
		*types = []PolicyType{PolicyTypeEgress}
	default:
		*types = []PolicyType{PolicyTypeIngress, PolicyTypeEgress}
	}
}
