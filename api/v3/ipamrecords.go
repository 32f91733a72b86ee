package v3

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// The IPAM records below are the allocator's own state, in the shape of
// Calico's crd.projectcalico.org/v1 IPAM CRDs. They are Internal: calicoctl
// shows them through `calicoctl ipam`, never through create/apply.

// IPAMBlock is one block of a pool: who it is affine to and which of its
// addresses are allocated. Its name is the CIDR with '.', ':' and '/' as '-'.
type IPAMBlock struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              IPAMBlockSpec `json:"spec,omitempty"`
}

// AllocationAttribute is shared by every address allocated under one handle.
type AllocationAttribute struct {
	HandleID  *string           `json:"handle_id,omitempty"`
	Secondary map[string]string `json:"secondary,omitempty"`
}

type IPAMBlockSpec struct {
	CIDR string `json:"cidr"`
	// Affinity is "host:<node>" (or "virtual:<name>"), nil when the block is unowned.
	Affinity *string `json:"affinity,omitempty"`
	// AffinityClaimTime is when the current owner claimed the block.
	AffinityClaimTime *metav1.Time `json:"affinityClaimTime,omitempty"`
	StrictAffinity    bool         `json:"strictAffinity"`
	// Allocations[i] is the index into Attributes of address i, or nil when free.
	Allocations []*int `json:"allocations"`
	// Unallocated lists free ordinals, oldest-freed first, so addresses are reused last.
	Unallocated []int                 `json:"unallocated"`
	Attributes  []AllocationAttribute `json:"attributes"`
	// SequenceNumber grows with every allocation, so a release can tell a
	// reused address from the one it means to free.
	SequenceNumber              uint64            `json:"sequenceNumber"`
	SequenceNumberForAllocation map[string]uint64 `json:"sequenceNumberForAllocation,omitempty"`
	Deleted                     bool              `json:"deleted,omitempty"`
}

type BlockAffinityState string

const (
	AffinityStatePending         BlockAffinityState = "pending"
	AffinityStateConfirmed       BlockAffinityState = "confirmed"
	AffinityStatePendingDeletion BlockAffinityState = "pendingDeletion"
)

// BlockAffinity records that a node owns (or is claiming) a block.
// Its name is "<node>-<block name>".
type BlockAffinity struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              BlockAffinitySpec `json:"spec,omitempty"`
}

type BlockAffinitySpec struct {
	State   BlockAffinityState `json:"state"`
	Node    string             `json:"node"`
	Type    string             `json:"type,omitempty"` // "host" or "virtual"
	CIDR    string             `json:"cidr"`
	Deleted bool               `json:"deleted,omitempty"`
}

// IPAMHandle groups the addresses of one allocation request
// (for pods, "k8s-pod-network.<containerID>").
type IPAMHandle struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              IPAMHandleSpec `json:"spec,omitempty"`
}

type IPAMHandleSpec struct {
	HandleID string `json:"handleID"`
	// Block maps a block CIDR to how many addresses this handle holds in it.
	Block   map[string]int `json:"block"`
	Deleted bool           `json:"deleted,omitempty"`
}

func init() {
	register(KindInfo{Kind: "IPAMBlock", Plural: "ipamblocks", Internal: true, new: func() Resource { return &IPAMBlock{} }})
	register(KindInfo{Kind: "BlockAffinity", Plural: "blockaffinities", Internal: true, new: func() Resource { return &BlockAffinity{} }})
	register(KindInfo{Kind: "IPAMHandle", Plural: "ipamhandles", Internal: true, new: func() Resource { return &IPAMHandle{} }})
}
