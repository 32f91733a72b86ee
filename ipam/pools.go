package ipam

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"

	"github.com/tabbynet/tabby/api/selector"
	v3 "github.com/tabbynet/tabby/api/v3"
)

// pool is an IPPool with its defaults applied and its fields parsed.
type pool struct {
	name      string
	cidr      netip.Prefix
	blockBits int
	disabled  bool
	sel       selector.Selector
	uses      []v3.IPPoolAllowedUse
	manual    bool
}

func (p pool) String() string { return fmt.Sprintf("%q (%s)", p.name, p.cidr) }

// parsePool applies Calico's defaults (blockSize 26/122, nodeSelector all(),
// allowedUses [Workload, Tunnel], assignmentMode Automatic) to what is
// stored, so that pools written without defaults behave as Calico's would.
func parsePool(r *v3.IPPool) (pool, error) {
	p := pool{name: r.Name, disabled: r.Spec.Disabled}
	cidr, err := netip.ParsePrefix(r.Spec.CIDR)
	if err != nil {
		return p, fmt.Errorf("IP pool %q: invalid cidr %q: %w", r.Name, r.Spec.CIDR, err)
	}
	p.cidr = cidr.Masked()
	p.blockBits = r.Spec.BlockSize
	minBits, maxBits := 20, 32
	if p.cidr.Addr().Is6() {
		minBits, maxBits = 116, 128
	}
	if p.blockBits == 0 {
		p.blockBits = maxBits - 6
	}
	if p.blockBits < minBits || p.blockBits > maxBits || p.blockBits < p.cidr.Bits() {
		return p, fmt.Errorf("IP pool %q: blockSize %d does not fit cidr %s", r.Name, p.blockBits, p.cidr)
	}
	sel := strings.TrimSpace(r.Spec.NodeSelector)
	if sel == "" {
		sel = "all()"
	}
	if p.sel, err = selector.Parse(sel); err != nil {
		return p, fmt.Errorf("IP pool %q: nodeSelector: %w", r.Name, err)
	}
	p.uses = r.Spec.AllowedUses
	if len(p.uses) == 0 {
		p.uses = []v3.IPPoolAllowedUse{v3.IPPoolAllowedUseWorkload, v3.IPPoolAllowedUseTunnel}
	}
	p.manual = r.Spec.AssignmentMode != nil && *r.Spec.AssignmentMode == v3.AssignmentModeManual
	return p, nil
}

func (p pool) version() int {
	if p.cidr.Addr().Is4() {
		return 4
	}
	return 6
}

func (p pool) allows(use v3.IPPoolAllowedUse) bool { return slices.Contains(p.uses, use) }

// blockFor is the block of this pool that holds a.
func (p pool) blockFor(a netip.Addr) netip.Prefix {
	b, _ := a.Prefix(p.blockBits)
	return b
}

// numBlocks is how many blocks the pool holds, saturating at MaxUint64.
func (p pool) numBlocks() uint64 {
	e := p.blockBits - p.cidr.Bits()
	if e >= 64 {
		return math.MaxUint64
	}
	return 1 << e
}

// nthBlock is the i-th block of the pool in address order.
func (p pool) nthBlock(i uint64) netip.Prefix {
	hostBits := uint(p.cidr.Addr().BitLen() - p.blockBits)
	if p.cidr.Addr().Is4() {
		base := binary.BigEndian.Uint32(p.cidr.Addr().AsSlice())
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], base+uint32(i)<<hostBits)
		return netip.PrefixFrom(netip.AddrFrom4(b), p.blockBits)
	}
	a := p.cidr.Addr().As16()
	hi, lo := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	addLo := i << hostBits
	var addHi uint64
	if hostBits > 0 {
		addHi = i >> (64 - hostBits)
	}
	newLo := lo + addLo
	carry := uint64(0)
	if newLo < lo {
		carry = 1
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi+addHi+carry)
	binary.BigEndian.PutUint64(b[8:], newLo)
	return netip.PrefixFrom(netip.AddrFrom16(b), p.blockBits)
}

// loadPools reads every IP pool, sorted by name. Pools that cannot be parsed
// are logged and left out.
func (m *IPAM) loadPools(ctx context.Context) ([]pool, error) {
	recs, err := listAs[*v3.IPPool](ctx, m.ds, "IPPool", "")
	if err != nil {
		return nil, fmt.Errorf("list IP pools: %w", err)
	}
	out := make([]pool, 0, len(recs))
	for _, r := range recs {
		p, err := parsePool(r)
		if err != nil {
			m.log.Warn("ignoring invalid IP pool", "pool", r.Name, "err", err)
			continue
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b pool) int { return cmp.Compare(a.name, b.name) })
	return out, nil
}

// poolFor finds the pool holding a.
func poolFor(pools []pool, a netip.Addr) (pool, bool) {
	for _, p := range pools {
		if p.cidr.Contains(a) {
			return p, true
		}
	}
	return pool{}, false
}

// selectPools decides which pools a request may use. requested lists pool
// names or CIDRs; when it is empty, every enabled Automatic pool of the
// family that selects the node and allows the use qualifies.
func selectPools(all []pool, version int, requested []string, node string, labels map[string]string, use v3.IPPoolAllowedUse) ([]pool, error) {
	if len(requested) == 0 {
		var out []pool
		for _, p := range all {
			if p.version() == version && !p.disabled && !p.manual && p.allows(use) && p.sel.Evaluate(labels) {
				out = append(out, p)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%w: no enabled IPv%d pool selects node %q and allows %s addresses", ErrNoPools, version, node, use)
		}
		return out, nil
	}
	var out []pool
	for _, want := range requested {
		p, ok := findPool(all, want)
		switch {
		case !ok:
			return nil, fmt.Errorf("%w: IP pool %q does not exist", ErrPool, want)
		case p.version() != version:
			return nil, fmt.Errorf("%w: IP pool %s is not an IPv%d pool", ErrPool, p, version)
		case p.disabled:
			return nil, fmt.Errorf("%w: IP pool %s is disabled", ErrPool, p)
		case !p.sel.Evaluate(labels):
			return nil, fmt.Errorf("%w: IP pool %s does not select node %q", ErrPool, p, node)
		case !p.allows(use):
			return nil, fmt.Errorf("%w: IP pool %s does not allow %s addresses", ErrPool, p, use)
		}
		if !slices.ContainsFunc(out, func(q pool) bool { return q.name == p.name }) {
			out = append(out, p)
		}
	}
	return out, nil
}

// findPool matches a requested pool by name, then by CIDR.
func findPool(all []pool, want string) (pool, bool) {
	for _, p := range all {
		if p.name == want {
			return p, true
		}
	}
	if pfx, err := netip.ParsePrefix(strings.TrimSpace(want)); err == nil {
		for _, p := range all {
			if p.cidr == pfx.Masked() {
				return p, true
			}
		}
	}
	return pool{}, false
}

// inPools reports whether block b lies in one of the pools.
func inPools(pools []pool, b netip.Prefix) bool {
	for _, p := range pools {
		if p.cidr.Bits() <= b.Bits() && p.cidr.Contains(b.Addr()) {
			return true
		}
	}
	return false
}

// firstUnclaimed returns the first block of p, in address order, that
// overlaps no existing block. It looks at no more than len(existing)+1
// candidates, so a huge IPv6 pool costs nothing extra.
func firstUnclaimed(p pool, existing []netip.Prefix) (netip.Prefix, bool) {
	exact := map[netip.Prefix]bool{}
	var odd []netip.Prefix // blocks of another size, from an older blockSize
	for _, e := range existing {
		if !p.cidr.Overlaps(e) {
			continue
		}
		if e.Bits() == p.blockBits {
			exact[e] = true
		} else {
			odd = append(odd, e)
		}
	}
	// Each existing block rules out at most this many candidates.
	limit := uint64(len(exact))
	for _, e := range odd {
		if d := p.blockBits - e.Bits(); d > 0 {
			limit += 1 << min(d, 40)
		} else {
			limit++
		}
	}
	n := p.numBlocks()
	for i := uint64(0); i < n && i <= limit; i++ {
		c := p.nthBlock(i)
		if exact[c] || slices.ContainsFunc(odd, c.Overlaps) {
			continue
		}
		return c, true
	}
	return netip.Prefix{}, false
}
