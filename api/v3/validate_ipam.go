package v3

import (
	"fmt"
	"net/netip"
	"strings"
)

var (
	linkLocalV4 = netip.MustParsePrefix("169.254.0.0/16")
	linkLocalV6 = netip.MustParsePrefix("fe80::/10")
)

var encapModes = []string{string(EncapNever), string(EncapAlways), string(EncapCrossSubnet)}

func encapEnabled(m EncapMode) bool { return m == EncapAlways || m == EncapCrossSubnet }

func (v *validator) ipPool(s *IPPoolSpec) {
	v.oneOf("spec.ipipMode", string(s.IPIPMode), encapModes...)
	v.oneOf("spec.vxlanMode", string(s.VXLANMode), encapModes...)
	if encapEnabled(s.IPIPMode) && encapEnabled(s.VXLANMode) {
		v.add("spec.vxlanMode", "%q cannot be combined with ipipMode %q: enable IPIP or VXLAN, not both", s.VXLANMode, s.IPIPMode)
	}
	if s.AssignmentMode != nil {
		v.oneOf("spec.assignmentMode", string(*s.AssignmentMode), string(AssignmentModeAutomatic), string(AssignmentModeManual))
		if *s.AssignmentMode == "" {
			v.add("spec.assignmentMode", `"" is not one of Automatic, Manual`)
		}
	}
	v.selector("spec.nodeSelector", s.NodeSelector)
	v.selector("spec.namespaceSelector", s.NamespaceSelector)

	loadBalancer := false
	for _, u := range s.AllowedUses {
		loadBalancer = loadBalancer || u == IPPoolAllowedUseLoadBalancer
	}
	for i, u := range s.AllowedUses {
		switch u {
		case IPPoolAllowedUseLoadBalancer:
		case IPPoolAllowedUseWorkload, IPPoolAllowedUseTunnel:
			if loadBalancer {
				v.add(idx("spec.allowedUses", i), "%q cannot be combined with LoadBalancer", u)
			}
		default:
			v.add(idx("spec.allowedUses", i), "%q is not one of Workload, Tunnel, LoadBalancer", u)
		}
	}
	if loadBalancer {
		if encapEnabled(s.IPIPMode) {
			v.add("spec.ipipMode", "%q is not allowed on a LoadBalancer pool: service addresses are not encapsulated", s.IPIPMode)
		}
		if encapEnabled(s.VXLANMode) {
			v.add("spec.vxlanMode", "%q is not allowed on a LoadBalancer pool: service addresses are not encapsulated", s.VXLANMode)
		}
		if s.NodeSelector != "" && s.NodeSelector != DefaultNodeSelector {
			v.add("spec.nodeSelector", "%q is not allowed on a LoadBalancer pool: it must be all()", s.NodeSelector)
		}
	}

	if s.CIDR == "" {
		v.add("spec.cidr", "a CIDR is required")
		return
	}
	p, err := netip.ParsePrefix(s.CIDR)
	if err != nil {
		v.add("spec.cidr", "%q is not a valid CIDR", s.CIDR)
		return
	}
	if p != p.Masked() {
		v.add("spec.cidr", "%q is not a network address; did you mean %s", s.CIDR, p.Masked())
	}
	v4 := p.Addr().Is4()
	if v4 && p.Overlaps(linkLocalV4) {
		v.add("spec.cidr", "%q overlaps the IPv4 link-local range %s", s.CIDR, linkLocalV4)
	}
	if !v4 && p.Overlaps(linkLocalV6) {
		v.add("spec.cidr", "%q overlaps the IPv6 link-local range %s", s.CIDR, linkLocalV6)
	}
	if !v4 && s.IPIPMode != "" && s.IPIPMode != EncapNever {
		v.add("spec.ipipMode", "%q is not supported on an IPv6 pool: IPIP is IPv4 only", s.IPIPMode)
	}
	blockSize, lo, hi := s.BlockSize, 20, 32
	if !v4 {
		lo, hi = 116, 128
	}
	if blockSize == 0 {
		blockSize = DefaultIPv4BlockSize
		if !v4 {
			blockSize = DefaultIPv6BlockSize
		}
	}
	family := "IPv4"
	if !v4 {
		family = "IPv6"
	}
	if blockSize < lo || blockSize > hi {
		v.add("spec.blockSize", "%d is out of range: the %s block size must be %d-%d", blockSize, family, lo, hi)
		return
	}
	// Calico IPAM hands out whole blocks, so an enabled pool needs room for
	// at least one. A disabled pool hands out nothing; Calico lets it be.
	if !s.Disabled && p.Bits() > blockSize {
		v.add("spec.cidr", "%q is smaller than one block (/%d): the prefix length must be at most the block size", s.CIDR, blockSize)
	}
}

// ValidatePoolOverlap refuses p when its CIDR overlaps the CIDR of any other
// enabled pool in existing (the pools already in the datastore). A pool named
// like p is skipped (it is the one p replaces), and so are disabled pools and
// pools whose CIDR does not parse; when p itself is disabled nothing is
// checked, since only enabled pools hand out addresses (run it again when the
// pool is re-enabled). Calico refuses an overlap with disabled pools too;
// Tabby allows it so that a pool can be split or moved by disabling the old
// one first.
func ValidatePoolOverlap(p *IPPool, existing []*IPPool) error {
	if p == nil || p.Spec.Disabled {
		return nil
	}
	mine, err := netip.ParsePrefix(p.Spec.CIDR)
	if err != nil {
		return &ValidationError{Kind: "IPPool", Name: p.Name, Errors: []FieldError{{Field: "spec.cidr", Reason: fmt.Sprintf("%q is not a valid CIDR", p.Spec.CIDR)}}}
	}
	var errs []FieldError
	for _, o := range existing {
		if o == nil || o.Name == p.Name || o.Spec.Disabled {
			continue
		}
		theirs, err := netip.ParsePrefix(o.Spec.CIDR)
		if err != nil || !mine.Overlaps(theirs) {
			continue
		}
		errs = append(errs, FieldError{Field: "spec.cidr", Reason: fmt.Sprintf("%s overlaps %s of IPPool %q", p.Spec.CIDR, o.Spec.CIDR, o.Name)})
	}
	if len(errs) == 0 {
		return nil
	}
	return &ValidationError{Kind: "IPPool", Name: p.Name, Errors: errs}
}

func (v *validator) ipamConfig(c *IPAMConfiguration) {
	if c.Spec.MaxBlocksPerHost < 0 {
		v.add("spec.maxBlocksPerHost", "%d must not be negative (0 means no limit)", c.Spec.MaxBlocksPerHost)
	}
}

// blockCIDR checks the CIDR of an IPAM record: a network address.
func (v *validator) blockCIDR(path, s string) (netip.Prefix, bool) {
	if s == "" {
		v.add(path, "a CIDR is required")
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		v.add(path, "%q is not a valid CIDR", s)
		return p, false
	}
	if p != p.Masked() {
		v.add(path, "%q is not a network address; did you mean %s", s, p.Masked())
		return p, false
	}
	return p, true
}

// ipamBlock checks that a block's bookkeeping is internally consistent:
// one allocation slot per address, attribute and free-list indices in range.
func (v *validator) ipamBlock(s *IPAMBlockSpec) {
	p, ok := v.blockCIDR("spec.cidr", s.CIDR)
	if s.Affinity != nil {
		kind, owner, found := strings.Cut(*s.Affinity, ":")
		if !found || owner == "" || (kind != "host" && kind != "virtual") {
			v.add("spec.affinity", "%q is not of the form host:<node> or virtual:<name>", *s.Affinity)
		}
	}
	if !ok {
		return
	}
	hostBits := p.Addr().BitLen() - p.Bits()
	if hostBits > 16 {
		v.add("spec.cidr", "%q is too large for a block (at most 65536 addresses)", s.CIDR)
		return
	}
	size := 1 << hostBits
	if len(s.Allocations) != size {
		v.add("spec.allocations", "has %d entries, the block has %d addresses", len(s.Allocations), size)
	}
	for i, a := range s.Allocations {
		if a != nil && (*a < 0 || *a >= len(s.Attributes)) {
			v.add(idx("spec.allocations", i), "attribute index %d is out of range 0-%d", *a, len(s.Attributes)-1)
		}
	}
	seen := map[int]bool{}
	for i, u := range s.Unallocated {
		switch {
		case u < 0 || u >= size:
			v.add(idx("spec.unallocated", i), "ordinal %d is out of range 0-%d", u, size-1)
		case seen[u]:
			v.add(idx("spec.unallocated", i), "ordinal %d is listed twice", u)
		case u < len(s.Allocations) && s.Allocations[u] != nil:
			v.add(idx("spec.unallocated", i), "ordinal %d is listed as free but is allocated", u)
		}
		seen[u] = true
	}
}

var affinityStates = []string{string(AffinityStatePending), string(AffinityStateConfirmed), string(AffinityStatePendingDeletion)}

func (v *validator) blockAffinity(s *BlockAffinitySpec) {
	v.oneOf("spec.state", string(s.State), affinityStates...)
	if s.Node == "" {
		v.add("spec.node", "a node name is required")
	}
	v.oneOf("spec.type", s.Type, "host", "virtual")
	v.blockCIDR("spec.cidr", s.CIDR)
}

func (v *validator) ipamHandle(s *IPAMHandleSpec) {
	if s.HandleID == "" {
		v.add("spec.handleID", "a handle ID is required")
	}
	for _, k := range sortedStringKeys(s.Block) {
		path := joinKey("spec.block", k)
		if _, err := netip.ParsePrefix(k); err != nil {
			v.add(path, "%q is not a valid CIDR", k)
		}
		if s.Block[k] < 0 {
			v.add(path, "count %d must not be negative", s.Block[k])
		}
	}
}
