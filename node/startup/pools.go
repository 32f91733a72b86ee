package startup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/node/autodetect"
	"github.com/tabbynet/tabby/node/config"
)

// ensurePools creates the default pool of each family that has none, as
// Calico's configureIPPools. It returns the pools that exist afterwards and
// the names it created.
func ensurePools(ctx context.Context, ds datastore.Interface, cfg config.Pools, sys autodetect.System, log *slog.Logger) ([]*v3.IPPool, []string, error) {
	list, err := ds.List(ctx, "IPPool", "")
	if err != nil {
		return nil, nil, fmt.Errorf("list IP pools to decide whether to create the default pool: %w", err)
	}
	var all []*v3.IPPool
	have4, have6 := false, false
	for _, item := range list.Items {
		pool := item.(*v3.IPPool)
		all = append(all, pool)
		p, err := netip.ParsePrefix(pool.Spec.CIDR)
		if err != nil {
			log.Warn("IP pool has an invalid CIDR, ignoring it", "pool", pool.Name, "cidr", pool.Spec.CIDR)
			continue
		}
		have4 = have4 || p.Addr().Is4()
		have6 = have6 || p.Addr().Is6()
	}
	if cfg.NoDefaultPools {
		log.Info("NO_DEFAULT_POOLS=true: not creating IP pools")
		return all, nil, nil
	}
	var created []string
	for _, want := range []struct {
		pool *config.Pool
		have bool
	}{{cfg.IPv4, have4}, {cfg.IPv6, have6}} {
		if want.pool == nil || want.have {
			continue
		}
		p := *want.pool
		if p.Defaulted {
			cidr, err := defaultIPv4CIDR(p.CIDR, sys)
			if err != nil {
				return all, created, err
			}
			if cidr != p.CIDR {
				log.Info("the default pool CIDR overlaps an address of this host, using another range", "overlapping", p.CIDR.String(), "cidr", cidr.String())
			}
			p.CIDR = cidr
		}
		pool, err := createPool(ctx, ds, &p, log)
		if err != nil {
			return all, created, err
		}
		if pool != nil {
			all = append(all, pool)
			created = append(created, pool.Name)
		}
	}
	return all, created, nil
}

// Encapsulation overheads, as Felix subtracts them from the host MTU.
const (
	ipipOverhead   = 20
	vxlan4Overhead = 50
	vxlan6Overhead = 70
)

// podMTU is the MTU pods get when the netconf leaves it to calico-node
// (Calico's veth_mtu "0"): the node interface's MTU less the largest
// encapsulation overhead any enabled pool uses. It is computed once at
// start; a pool added later is reflected on the next start.
func podMTU(iface *autodetect.Result, pools []*v3.IPPool) int {
	mtu := 1500
	if iface != nil && iface.Interface != "" && iface.MTU > 0 {
		mtu = iface.MTU
	}
	overhead := 0
	for _, p := range pools {
		if p.Spec.Disabled {
			continue
		}
		o := 0
		if p.Spec.IPIPMode != "" && p.Spec.IPIPMode != v3.EncapNever {
			o = ipipOverhead
		}
		if p.Spec.VXLANMode != "" && p.Spec.VXLANMode != v3.EncapNever {
			o = vxlan4Overhead
			if pfx, err := netip.ParsePrefix(p.Spec.CIDR); err == nil && pfx.Addr().Is6() {
				o = vxlan6Overhead
			}
		}
		overhead = max(overhead, o)
	}
	return mtu - overhead
}

func createPool(ctx context.Context, ds datastore.Interface, p *config.Pool, log *slog.Logger) (*v3.IPPool, error) {
	r, _ := v3.NewResource("IPPool")
	pool := r.(*v3.IPPool)
	pool.ObjectMeta = metav1.ObjectMeta{Name: p.Name}
	pool.Spec = v3.IPPoolSpec{
		CIDR:             p.CIDR.String(),
		BlockSize:        p.BlockSize,
		IPIPMode:         p.IPIPMode,
		VXLANMode:        p.VXLANMode,
		NATOutgoing:      p.NATOutgoing,
		NodeSelector:     p.NodeSelector,
		DisableBGPExport: p.DisableBGPExport,
	}
	v3.SetDefaults(pool)
	family := "4"
	if p.CIDR.Addr().Is6() {
		family = "6"
	}
	if err := v3.Validate(pool); err != nil {
		var verr *v3.ValidationError
		if errors.As(err, &verr) {
			var reasons []string
			for _, fe := range verr.Errors {
				reasons = append(reasons, fe.Error())
			}
			return nil, fmt.Errorf("CALICO_IPV%sPOOL_CIDR=%s: the default pool would be invalid: %s", family, p.CIDR, strings.Join(reasons, "; "))
		}
		return nil, fmt.Errorf("CALICO_IPV%sPOOL_CIDR=%s: the default pool would be invalid: %w", family, p.CIDR, err)
	}
	out, err := ds.Create(ctx, pool)
	if err != nil {
		if datastore.IsAlreadyExists(err) {
			// Another node created it first; theirs is as good as ours
			// (and its settings are unknown here, so it does not count
			// towards the MTU until the next start).
			log.Info("default IP pool already exists", "pool", p.Name)
			return nil, nil
		}
		return nil, fmt.Errorf("create default IP pool %q (%s): %w", p.Name, p.CIDR, err)
	}
	log.Info("created default IP pool", "pool", p.Name, "cidr", p.CIDR.String(), "blockSize", p.BlockSize,
		"ipipMode", p.IPIPMode, "vxlanMode", p.VXLANMode, "natOutgoing", p.NATOutgoing)
	return out.(*v3.IPPool), nil
}

// defaultIPv4CIDR returns the default pool's CIDR, moved off the host's own
// ranges as Calico does: 192.168.0.0/16 is the default, but a node whose
// LAN is inside it would black-hole its own subnet (the blackhole route of
// an owned block is more specific than the connected route), so the first
// of 172.16.0.0/16 ... 172.31.0.0/16 that overlaps no host address is used
// instead. It applies only when CALICO_IPV4POOL_CIDR was not given.
func defaultIPv4CIDR(preferred netip.Prefix, sys autodetect.System) (netip.Prefix, error) {
	ifaces, err := sys.Interfaces()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("list this host's addresses to place the default IP pool: %w", err)
	}
	var host []netip.Prefix
	for _, iface := range ifaces {
		for _, a := range iface.Addrs {
			if a.Addr().Is4() && !a.Addr().IsLoopback() && !a.Addr().IsLinkLocalUnicast() {
				host = append(host, a.Masked())
			}
		}
	}
	free := func(c netip.Prefix) bool {
		for _, h := range host {
			if h.Overlaps(c) {
				return false
			}
		}
		return true
	}
	if free(preferred) {
		return preferred, nil
	}
	for second := 16; second <= 31; second++ {
		c := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(second), 0, 0}), 16)
		if free(c) {
			return c, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("CALICO_IPV4POOL_CIDR is unset and %s and every range of 172.16.0.0/16-172.31.0.0/16 overlap this host's addresses: set CALICO_IPV4POOL_CIDR", preferred)
}
