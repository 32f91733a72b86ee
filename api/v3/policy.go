package v3

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

type Action string

const (
	ActionAllow Action = "Allow"
	ActionDeny  Action = "Deny"
	ActionLog   Action = "Log"
	ActionPass  Action = "Pass"
)

type PolicyType string

const (
	PolicyTypeIngress PolicyType = "Ingress"
	PolicyTypeEgress  PolicyType = "Egress"
)

type ICMPFields struct {
	Type *int `json:"type,omitempty"`
	Code *int `json:"code,omitempty"`
}

type ServiceAccountMatch struct {
	Names    []string `json:"names,omitempty"`
	Selector string   `json:"selector,omitempty"`
}

type ServiceMatch struct {
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

type EntityRule struct {
	Nets              []string             `json:"nets,omitempty"`
	Selector          string               `json:"selector,omitempty"`
	NamespaceSelector string               `json:"namespaceSelector,omitempty"`
	Services          *ServiceMatch        `json:"services,omitempty"`
	Ports             []Port               `json:"ports,omitempty"`
	NotNets           []string             `json:"notNets,omitempty"`
	NotSelector       string               `json:"notSelector,omitempty"`
	NotPorts          []Port               `json:"notPorts,omitempty"`
	ServiceAccounts   *ServiceAccountMatch `json:"serviceAccounts,omitempty"`
}

type HTTPPath struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
}

type HTTPMatch struct {
	Methods []string   `json:"methods,omitempty"`
	Paths   []HTTPPath `json:"paths,omitempty"`
}

type RuleMetadata struct {
	Annotations map[string]string `json:"annotations,omitempty"`
}

type Rule struct {
	Action      Action        `json:"action"`
	IPVersion   *int          `json:"ipVersion,omitempty"`
	Protocol    *Protocol     `json:"protocol,omitempty"`
	ICMP        *ICMPFields   `json:"icmp,omitempty"`
	NotProtocol *Protocol     `json:"notProtocol,omitempty"`
	NotICMP     *ICMPFields   `json:"notICMP,omitempty"`
	Source      EntityRule    `json:"source,omitempty"`
	Destination EntityRule    `json:"destination,omitempty"`
	HTTP        *HTTPMatch    `json:"http,omitempty"`
	Metadata    *RuleMetadata `json:"metadata,omitempty"`
}

// NetworkPolicy is a namespaced Calico policy.
type NetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              NetworkPolicySpec `json:"spec,omitempty"`
}

type NetworkPolicySpec struct {
	Tier                   string       `json:"tier,omitempty"`
	Order                  *float64     `json:"order,omitempty"`
	Ingress                []Rule       `json:"ingress,omitempty"`
	Egress                 []Rule       `json:"egress,omitempty"`
	Selector               string       `json:"selector,omitempty"`
	Types                  []PolicyType `json:"types,omitempty"`
	ServiceAccountSelector string       `json:"serviceAccountSelector,omitempty"`
	PerformanceHints       []string     `json:"performanceHints,omitempty"`
}

// GlobalNetworkPolicy is a cluster-wide Calico policy.
type GlobalNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              GlobalNetworkPolicySpec `json:"spec,omitempty"`
}

type GlobalNetworkPolicySpec struct {
	Tier                   string       `json:"tier,omitempty"`
	Order                  *float64     `json:"order,omitempty"`
	Ingress                []Rule       `json:"ingress,omitempty"`
	Egress                 []Rule       `json:"egress,omitempty"`
	Selector               string       `json:"selector,omitempty"`
	Types                  []PolicyType `json:"types,omitempty"`
	DoNotTrack             bool         `json:"doNotTrack,omitempty"`
	PreDNAT                bool         `json:"preDNAT,omitempty"`
	ApplyOnForward         bool         `json:"applyOnForward,omitempty"`
	ServiceAccountSelector string       `json:"serviceAccountSelector,omitempty"`
	NamespaceSelector      string       `json:"namespaceSelector,omitempty"`
	PerformanceHints       []string     `json:"performanceHints,omitempty"`
}

// NetworkSet is a namespaced set of CIDRs that policy can select by label.
type NetworkSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              NetworkSetSpec `json:"spec,omitempty"`
}

type NetworkSetSpec struct {
	Nets []string `json:"nets,omitempty"`
}

// GlobalNetworkSet is a cluster-wide set of CIDRs that policy can select by label.
type GlobalNetworkSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              GlobalNetworkSetSpec `json:"spec,omitempty"`
}

type GlobalNetworkSetSpec struct {
	Nets []string `json:"nets,omitempty"`
}

func init() {
	register(KindInfo{Kind: "NetworkPolicy", Plural: "networkpolicies", Namespaced: true, Aliases: []string{"networkpolicy", "networkpolicies", "policy", "policies", "pol", "pols", "np", "nps"}, new: func() Resource { return &NetworkPolicy{} }})
	register(KindInfo{Kind: "GlobalNetworkPolicy", Plural: "globalnetworkpolicies", Aliases: []string{"globalnetworkpolicy", "globalnetworkpolicies", "gnp", "gnps"}, new: func() Resource { return &GlobalNetworkPolicy{} }})
	register(KindInfo{Kind: "NetworkSet", Plural: "networksets", Namespaced: true, Aliases: []string{"networkset", "networksets", "netset", "netsets"}, new: func() Resource { return &NetworkSet{} }})
	register(KindInfo{Kind: "GlobalNetworkSet", Plural: "globalnetworksets", Aliases: []string{"globalnetworkset", "globalnetworksets", "gns"}, new: func() Resource { return &GlobalNetworkSet{} }})
}
