package v3

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Encapsulation modes of an IPPool.
type EncapMode string

const (
	EncapNever       EncapMode = "Never"
	EncapAlways      EncapMode = "Always"
	EncapCrossSubnet EncapMode = "CrossSubnet"
)

type IPPoolAllowedUse string

const (
	IPPoolAllowedUseWorkload     IPPoolAllowedUse = "Workload"
	IPPoolAllowedUseTunnel       IPPoolAllowedUse = "Tunnel"
	IPPoolAllowedUseLoadBalancer IPPoolAllowedUse = "LoadBalancer"
)

type AssignmentMode string

const (
	AssignmentModeAutomatic AssignmentMode = "Automatic"
	AssignmentModeManual    AssignmentMode = "Manual"
)

// IPPool is a range of addresses that pods (and tunnels) are given.
type IPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              IPPoolSpec `json:"spec,omitempty"`
	// Status is written by the datastore layer (Calico records whether the
	// pool is allocatable); nil, and so absent from output, until then.
	Status *IPPoolStatus `json:"status,omitempty"`
}

// IPPoolStatus is Calico's IPPool status: conditions such as Allocatable.
type IPPoolStatus struct {
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

type IPPoolSpec struct {
	CIDR              string             `json:"cidr"`
	VXLANMode         EncapMode          `json:"vxlanMode,omitempty"`
	IPIPMode          EncapMode          `json:"ipipMode,omitempty"`
	NATOutgoing       bool               `json:"natOutgoing,omitempty"`
	Disabled          bool               `json:"disabled,omitempty"`
	DisableBGPExport  bool               `json:"disableBGPExport,omitempty"`
	BlockSize         int                `json:"blockSize,omitempty"`
	NodeSelector      string             `json:"nodeSelector,omitempty"`
	NamespaceSelector string             `json:"namespaceSelector,omitempty"`
	AllowedUses       []IPPoolAllowedUse `json:"allowedUses,omitempty"`
	AssignmentMode    *AssignmentMode    `json:"assignmentMode,omitempty"`
}

// IPAMConfiguration holds the cluster's IPAM settings; its only valid name is "default".
type IPAMConfiguration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              IPAMConfigurationSpec `json:"spec,omitempty"`
}

type IPAMConfigurationSpec struct {
	StrictAffinity   bool  `json:"strictAffinity"`
	MaxBlocksPerHost int32 `json:"maxBlocksPerHost,omitempty"`
	// AutoAllocateBlocks lets nodes claim new blocks; Calico's default is true.
	AutoAllocateBlocks *bool `json:"autoAllocateBlocks,omitempty"`
}

func init() {
	register(KindInfo{Kind: "IPPool", Plural: "ippools", Aliases: []string{"ippool", "ippools", "ipp", "ipps", "pool", "pools"}, new: func() Resource { return &IPPool{} }})
	register(KindInfo{Kind: "IPAMConfiguration", Plural: "ipamconfigurations", Aliases: []string{"ipamconfig", "ipamconfigs", "ipamconfiguration"}, new: func() Resource { return &IPAMConfiguration{} }})
}
