package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/tabbynet/tabby/api/selector"
	v3 "github.com/tabbynet/tabby/api/v3"
)

// pools reads NO_DEFAULT_POOLS and the CALICO_IPV4POOL_* / CALICO_IPV6POOL_*
// variables. As in Calico, every value is checked even when a pool of the
// family already exists and nothing will be created.
func (r *reader) pools() Pools {
	var p Pools
	p.NoDefaultPools = r.boolean("NO_DEFAULT_POOLS", false)
	v4, v6 := r.str("CALICO_IPV4POOL_CIDR"), r.str("CALICO_IPV6POOL_CIDR")
	if p.NoDefaultPools {
		for _, name := range []string{"CALICO_IPV4POOL_CIDR", "CALICO_IPV6POOL_CIDR"} {
			if r.str(name) != "" {
				r.fail(name, "contradicts NO_DEFAULT_POOLS=true: unset one of them")
			}
		}
		return p
	}
	if !strings.EqualFold(v4, "none") {
		defaulted := v4 == ""
		if defaulted {
			v4 = DefaultIPv4PoolCIDR
		}
		p.IPv4 = r.pool(4, v4)
		if p.IPv4 != nil {
			p.IPv4.Defaulted = defaulted
		}
	}
	// Calico invents a random ULA pool when CALICO_IPV6POOL_CIDR is unset
	// (and the host has IPv6); Tabby creates an IPv6 pool only on request.
	if v6 != "" && !strings.EqualFold(v6, "none") {
		p.IPv6 = r.pool(6, v6)
	}
	return p
}

func (r *reader) pool(family int, cidr string) *Pool {
	prefix := fmt.Sprintf("CALICO_IPV%dPOOL_", family)
	pool := &Pool{Name: DefaultIPv4PoolName, BlockSize: DefaultIPv4BlockSize, NATOutgoing: defaultIPv4NATOutgoing}
	minBlock, maxBlock, fam := 20, 32, "IPv4"
	if family == 6 {
		pool.Name, pool.BlockSize, pool.NATOutgoing = DefaultIPv6PoolName, DefaultIPv6BlockSize, defaultIPv6NATOutgoing
		minBlock, maxBlock, fam = 116, 128, "IPv6"
	}

	cidrOK := false
	if p, err := netip.ParsePrefix(cidr); err != nil {
		r.fail(prefix+"CIDR", fmt.Sprintf("not an %s CIDR (write it like %s)", fam, map[int]string{4: "10.244.0.0/16", 6: "fd00:10:244::/64"}[family]))
	} else if (family == 4) != p.Addr().Is4() || p.Addr().Is4In6() {
		r.fail(prefix+"CIDR", fmt.Sprintf("not an %s CIDR", fam))
	} else {
		// Calico masks host bits (10.0.0.1/16 is the pool 10.0.0.0/16).
		pool.CIDR, cidrOK = p.Masked(), true
	}

	if v := r.str(prefix + "BLOCK_SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			r.fail(prefix+"BLOCK_SIZE", fmt.Sprintf("not a number: give a prefix length %d-%d", minBlock, maxBlock))
		case n < minBlock || n > maxBlock:
			r.fail(prefix+"BLOCK_SIZE", fmt.Sprintf("out of range: an %s block size is %d-%d", fam, minBlock, maxBlock))
		default:
			pool.BlockSize = n
		}
	}
	if cidrOK && pool.CIDR.Bits() > pool.BlockSize {
		r.errs = append(r.errs, fmt.Errorf("%sCIDR=%s: smaller than one block (/%d): use a larger pool or set %sBLOCK_SIZE to at least %d",
			prefix, cidr, pool.BlockSize, prefix, pool.CIDR.Bits()))
	}

	if family == 4 {
		pool.IPIPMode = r.encap(prefix + "IPIP")
	} else {
		pool.IPIPMode = v3.EncapNever
	}
	pool.VXLANMode = r.encap(prefix + "VXLAN")
	if pool.IPIPMode != v3.EncapNever && pool.VXLANMode != v3.EncapNever {
		r.errs = append(r.errs, fmt.Errorf("%sIPIP=%s and %sVXLAN=%s: a pool uses one encapsulation: set one of them to Never",
			prefix, r.str(prefix+"IPIP"), prefix, r.str(prefix+"VXLAN")))
	}
	pool.NATOutgoing = r.boolean(prefix+"NAT_OUTGOING", pool.NATOutgoing)
	pool.DisableBGPExport = r.boolean(prefix+"DISABLE_BGP_EXPORT", false)
	if s := r.str(prefix + "NODE_SELECTOR"); s != "" {
		if err := selector.Validate(s); err != nil {
			r.failErr(prefix+"NODE_SELECTOR", err)
		} else {
			pool.NodeSelector = s
		}
	}
	return pool
}

// encap reads an IPIP or VXLAN mode with Calico's spellings.
func (r *reader) encap(name string) v3.EncapMode {
	switch strings.ToLower(r.str(name)) {
	case "", "off", "never":
		return v3.EncapNever
	case "always":
		return v3.EncapAlways
	case "crosssubnet", "cross-subnet":
		return v3.EncapCrossSubnet
	}
	r.fail(name, "not an encapsulation mode: use Always, CrossSubnet or Never")
	return v3.EncapNever
}
