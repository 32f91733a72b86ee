package ipam

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
)

// Allocation attribute keys, as Calico's CNI plugin writes them.
const (
	AttributePod       = "pod"
	AttributeNamespace = "namespace"
	AttributeNode      = "node"
	AttributeTimestamp = "timestamp"
	AttributeType      = "type"
)

// maxBlockHostBits bounds block sizes we are prepared to hold in memory:
// Calico allows /20 (4096 addresses) for IPv4 and /116 for IPv6.
const maxBlockHostBits = 12

// Names of the records, exactly as Calico spells them so that data written by
// one is found by the other.

// blockName is the CIDR with '.', ':' and '/' replaced by '-'.
func blockName(p netip.Prefix) string {
	return strings.NewReplacer(".", "-", ":", "-", "/", "-").Replace(p.String())
}

// affinityName is "<node>-<block name>", shortened with a hash suffix when it
// would exceed the 253 characters a Kubernetes name may have.
func affinityName(node string, p netip.Prefix) string {
	name := node + "-" + blockName(p)
	if len(name) <= 253 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := hex.EncodeToString(sum[:])[:16]
	return name[:253-len(suffix)-1] + "-" + suffix
}

// handleName is the record name of a handle: Calico's Kubernetes backend
// lower-cases handle IDs to make them valid names.
func handleName(handleID string) string { return strings.ToLower(handleID) }

func hostAffinity(node string) string { return "host:" + node }

// blockState is a decoded IPAMBlock: the record and its parsed CIDR. Its
// methods change the record in place; callers work on a fresh copy read from
// the datastore and write it back with compare-and-swap.
type blockState struct {
	prefix netip.Prefix
	rec    *v3.IPAMBlock
}

// newBlock builds the record for a block just being claimed. The sequence
// number starts at the clock, as Calico does, so that a block deleted and
// created again never repeats a sequence number a client may still hold.
func newBlock(p netip.Prefix, node string, strict bool, now time.Time) *v3.IPAMBlock {
	n := 1 << (p.Addr().BitLen() - p.Bits())
	b := &v3.IPAMBlock{}
	b.Name = blockName(p)
	b.Spec.CIDR = p.String()
	if node != "" {
		aff := hostAffinity(node)
		b.Spec.Affinity = &aff
		t := metav1.NewTime(now)
		b.Spec.AffinityClaimTime = &t
	}
	b.Spec.StrictAffinity = strict
	b.Spec.Allocations = make([]*int, n)
	b.Spec.Unallocated = make([]int, n)
	for i := range n {
		b.Spec.Unallocated[i] = i
	}
	b.Spec.Attributes = []v3.AllocationAttribute{}
	b.Spec.SequenceNumber = uint64(now.UnixNano())
	b.Spec.SequenceNumberForAllocation = map[string]uint64{}
	return b
}

// errMalformedBlock marks a block record that cannot be used safely.
var errMalformedBlock = errors.New("malformed IPAM block")

// decodeBlock checks that a stored block is well-formed enough to work on:
// every index is in range, so no operation can panic, and the free queue
// names only free ordinals, so nothing can be handed out twice.
func decodeBlock(r *v3.IPAMBlock) (*blockState, error) {
	b, err := decodeBlockSpec(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformedBlock, err)
	}
	return b, nil
}

func decodeBlockSpec(r *v3.IPAMBlock) (*blockState, error) {
	p, err := netip.ParsePrefix(r.Spec.CIDR)
	if err != nil {
		return nil, fmt.Errorf("block %q: invalid cidr: %w", r.Name, err)
	}
	if p.Masked() != p {
		return nil, fmt.Errorf("block %q: cidr %s is not a network address", r.Name, p)
	}
	hostBits := p.Addr().BitLen() - p.Bits()
	if hostBits > maxBlockHostBits {
		return nil, fmt.Errorf("block %q: /%d blocks are larger than supported", r.Name, p.Bits())
	}
	n := 1 << hostBits
	s := &r.Spec
	if len(s.Allocations) != n {
		return nil, fmt.Errorf("block %s: %d allocation slots for %d addresses", p, len(s.Allocations), n)
	}
	for i, a := range s.Allocations {
		if a != nil && (*a < 0 || *a >= len(s.Attributes)) {
			return nil, fmt.Errorf("block %s: address %d refers to missing attribute %d", p, i, *a)
		}
	}
	seen := make([]bool, n)
	for _, o := range s.Unallocated {
		if o < 0 || o >= n || seen[o] || s.Allocations[o] != nil {
			return nil, fmt.Errorf("block %s: free list names ordinal %d, which is out of range, repeated or allocated", p, o)
		}
		seen[o] = true
	}
	if s.SequenceNumberForAllocation == nil {
		s.SequenceNumberForAllocation = map[string]uint64{}
	}
	return &blockState{prefix: p, rec: r}, nil
}

func (b *blockState) size() int { return len(b.rec.Spec.Allocations) }

// free is the number of addresses that can be allocated now.
func (b *blockState) free() int { return len(b.rec.Spec.Unallocated) }

func (b *blockState) inUse() int {
	n := 0
	for _, a := range b.rec.Spec.Allocations {
		if a != nil {
			n++
		}
	}
	return n
}

func (b *blockState) empty() bool { return b.inUse() == 0 }

// owner is the node the block is affine to, "" when it has none (or a
// non-host affinity).
func (b *blockState) owner() string {
	if a := b.rec.Spec.Affinity; a != nil && strings.HasPrefix(*a, "host:") {
		return strings.TrimPrefix(*a, "host:")
	}
	return ""
}

func (b *blockState) affineTo(node string) bool {
	a := b.rec.Spec.Affinity
	return a != nil && *a == hostAffinity(node)
}

func (b *blockState) ordinalOf(a netip.Addr) (int, bool) {
	if !b.prefix.Contains(a) {
		return 0, false
	}
	base := b.prefix.Addr().AsSlice()
	x := a.AsSlice()
	// Blocks have at most 12 host bits, so the last two bytes hold the ordinal.
	l := len(x)
	ord := (int(x[l-2])<<8 | int(x[l-1])) - (int(base[l-2])<<8 | int(base[l-1]))
	return ord, ord >= 0 && ord < b.size()
}

func (b *blockState) addrOf(ord int) netip.Addr {
	x := b.prefix.Addr().AsSlice()
	l := len(x)
	v := (int(x[l-2])<<8 | int(x[l-1])) + ord
	x[l-2], x[l-1] = byte(v>>8), byte(v)
	a, _ := netip.AddrFromSlice(x)
	return a
}

// prefixOf is what AutoAssign returns for an address: the address with the
// block's prefix length, as Calico does.
func (b *blockState) prefixOf(ord int) netip.Prefix {
	return netip.PrefixFrom(b.addrOf(ord), b.prefix.Bits())
}

func (b *blockState) attr(ord int) (v3.AllocationAttribute, bool) {
	a := b.rec.Spec.Allocations[ord]
	if a == nil {
		return v3.AllocationAttribute{}, false
	}
	return b.rec.Spec.Attributes[*a], true
}

func (b *blockState) handleOf(ord int) string {
	at, ok := b.attr(ord)
	if !ok || at.HandleID == nil {
		return ""
	}
	return *at.HandleID
}

// seqOf is the sequence number recorded when ord was allocated (0 for
// allocations made by software that did not record one).
func (b *blockState) seqOf(ord int) uint64 {
	return b.rec.Spec.SequenceNumberForAllocation[strconv.Itoa(ord)]
}

// findOrAddAttribute shares one attribute entry between the addresses of one
// request, as Calico does.
func (b *blockState) findOrAddAttribute(handle string, attrs map[string]string) int {
	s := &b.rec.Spec
	for i, at := range s.Attributes {
		h := ""
		if at.HandleID != nil {
			h = *at.HandleID
		}
		if h == handle && maps.Equal(at.Secondary, attrs) {
			return i
		}
	}
	at := v3.AllocationAttribute{}
	if handle != "" {
		h := handle
		at.HandleID = &h
	}
	if len(attrs) > 0 {
		at.Secondary = maps.Clone(attrs)
	}
	s.Attributes = append(s.Attributes, at)
	return len(s.Attributes) - 1
}

func (b *blockState) markAllocated(ord, attrIdx int) {
	s := &b.rec.Spec
	idx := attrIdx
	s.Allocations[ord] = &idx
	s.SequenceNumberForAllocation[strconv.Itoa(ord)] = s.SequenceNumber
}

// autoAssign takes up to n addresses from the head of the free queue (the
// ones free for longest) and returns their ordinals.
func (b *blockState) autoAssign(n int, handle string, attrs map[string]string) []int {
	s := &b.rec.Spec
	if n <= 0 || len(s.Unallocated) == 0 {
		return nil
	}
	if n > len(s.Unallocated) {
		n = len(s.Unallocated)
	}
	ords := slices.Clone(s.Unallocated[:n])
	s.Unallocated = slices.Clone(s.Unallocated[n:])
	idx := b.findOrAddAttribute(handle, attrs)
	for _, o := range ords {
		b.markAllocated(o, idx)
	}
	return ords
}

// errAddressInUse is returned by assign when the address is taken.
var errAddressInUse = errors.New("address is already allocated")

// assign takes one given address.
func (b *blockState) assign(ord int, handle string, attrs map[string]string) error {
	s := &b.rec.Spec
	if s.Allocations[ord] != nil {
		return errAddressInUse
	}
	i := slices.Index(s.Unallocated, ord)
	if i < 0 {
		return fmt.Errorf("block %s: ordinal %d is neither allocated nor free", b.prefix, ord)
	}
	s.Unallocated = slices.Delete(slices.Clone(s.Unallocated), i, i+1)
	b.markAllocated(ord, b.findOrAddAttribute(handle, attrs))
	return nil
}

// releaseReq asks to free one address, optionally only if it still belongs
// to a handle and still carries the sequence number the caller saw.
type releaseReq struct {
	ord    int
	handle string
	seq    *uint64
}

type blockRelease struct {
	released    []int          // ordinals freed
	unallocated []int          // ordinals that were already free
	stale       []int          // allocated, but not the allocation the caller meant
	byHandle    map[string]int // addresses freed per handle
}

// release frees the requested addresses that match their conditions. Freed
// ordinals go to the tail of the free queue in address order.
func (b *blockState) release(reqs []releaseReq) blockRelease {
	var out blockRelease
	out.byHandle = map[string]int{}
	done := map[int]bool{}
	for _, r := range reqs {
		if done[r.ord] {
			continue
		}
		done[r.ord] = true
		if b.rec.Spec.Allocations[r.ord] == nil {
			out.unallocated = append(out.unallocated, r.ord)
			continue
		}
		h := b.handleOf(r.ord)
		if (r.handle != "" && r.handle != h) || (r.seq != nil && *r.seq != b.seqOf(r.ord)) {
			out.stale = append(out.stale, r.ord)
			continue
		}
		out.released = append(out.released, r.ord)
		if h != "" {
			out.byHandle[h]++
		}
	}
	b.freeOrdinals(out.released)
	return out
}

// holds reports whether any address of the block belongs to handle.
func (b *blockState) holds(handle string) bool {
	for o, a := range b.rec.Spec.Allocations {
		if a != nil && b.handleOf(o) == handle {
			return true
		}
	}
	return false
}

// releaseHandle frees every address of a handle in this block.
func (b *blockState) releaseHandle(handle string) []int {
	var ords []int
	for o := range b.rec.Spec.Allocations {
		if b.rec.Spec.Allocations[o] != nil && b.handleOf(o) == handle {
			ords = append(ords, o)
		}
	}
	b.freeOrdinals(ords)
	return ords
}

func (b *blockState) freeOrdinals(ords []int) {
	if len(ords) == 0 {
		return
	}
	s := &b.rec.Spec
	sorted := slices.Sorted(slices.Values(ords))
	for _, o := range sorted {
		s.Allocations[o] = nil
		delete(s.SequenceNumberForAllocation, strconv.Itoa(o))
	}
	s.Unallocated = append(slices.Clone(s.Unallocated), sorted...)
	b.compactAttributes()
}

// compactAttributes drops attributes no address refers to any more and
// renumbers the rest, keeping their order.
func (b *blockState) compactAttributes() {
	s := &b.rec.Spec
	used := make([]bool, len(s.Attributes))
	for _, a := range s.Allocations {
		if a != nil {
			used[*a] = true
		}
	}
	newIdx := make([]int, len(s.Attributes))
	kept := s.Attributes[:0:0]
	for i, at := range s.Attributes {
		if used[i] {
			newIdx[i] = len(kept)
			kept = append(kept, at)
		}
	}
	s.Attributes = kept
	for i, a := range s.Allocations {
		if a != nil {
			v := newIdx[*a]
			s.Allocations[i] = &v
		}
	}
}

// countByHandle is how many addresses each handle holds in the block.
func (b *blockState) countByHandle() map[string]int {
	out := map[string]int{}
	for o, a := range b.rec.Spec.Allocations {
		if a != nil {
			if h := b.handleOf(o); h != "" {
				out[h]++
			}
		}
	}
	return out
}
