package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ipv6DefaultMetric is the priority the kernel gives an IPv6 route added
// without one; IPv4 routes keep 0.
const ipv6DefaultMetric = 1024

// routeKey is how the kernel identifies a route in one table: a replace or an
// exclusive add collides with any route, of any protocol, at the same
// destination, TOS and metric.
type routeKey struct {
	dst    netip.Prefix
	tos    int
	metric int
}

func normMetric(dst netip.Prefix, metric int) int {
	if metric == 0 && dst.Addr().Is6() {
		return ipv6DefaultMetric
	}
	return metric
}

func desiredKey(r Route) routeKey {
	return routeKey{dst: r.Dst, metric: normMetric(r.Dst, r.Metric)}
}

// KernelDst returns the destination of a route from a dump as a prefix
// (a nil Dst is the default route of the route's family).
func KernelDst(k netlink.Route) (netip.Prefix, bool) {
	if k.Dst == nil {
		switch k.Family {
		case unix.AF_INET:
			return netip.PrefixFrom(netip.IPv4Unspecified(), 0), true
		case unix.AF_INET6:
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0), true
		}
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(k.Dst.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap()
	ones, _ := k.Dst.Mask.Size()
	return netip.PrefixFrom(addr, ones).Masked(), true
}

func kernelKey(k netlink.Route) (routeKey, bool) {
	dst, ok := KernelDst(k)
	if !ok {
		return routeKey{}, false
	}
	return routeKey{dst: dst, tos: k.Tos, metric: normMetric(dst, k.Priority)}, true
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func addrOf(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}

// toNetlink is the kernel form of r, owned by RouteProtocol in the main table.
func toNetlink(r Route, ifindex int) *netlink.Route {
	nr := &netlink.Route{
		Dst:       prefixToIPNet(r.Dst),
		LinkIndex: ifindex,
		Table:     unix.RT_TABLE_MAIN,
		Protocol:  RouteProtocol,
		Priority:  r.Metric,
		MTU:       r.MTU,
		Scope:     netlink.Scope(r.Scope),
		Type:      unix.RTN_UNICAST,
	}
	if r.Dst.Addr().Is6() {
		nr.Scope = netlink.SCOPE_UNIVERSE
	}
	if r.Type == Blackhole {
		nr.Type = unix.RTN_BLACKHOLE
	}
	if r.Gateway.IsValid() {
		nr.Gw = r.Gateway.AsSlice()
	}
	if r.OnLink {
		nr.Flags = int(netlink.FLAG_ONLINK)
	}
	return nr
}

// matches reports whether kernel route k is exactly r (with r's device
// resolved to ifindex). Flags the kernel sets by itself (linkdown) are
// ignored; for a blackhole, and for a gateway route without a device, the
// kernel's choice of device is ignored too.
func matches(k netlink.Route, r Route, ifindex int) bool {
	key, ok := kernelKey(k)
	if !ok || key != desiredKey(r) {
		return false
	}
	wantType := unix.RTN_UNICAST
	if r.Type == Blackhole {
		wantType = unix.RTN_BLACKHOLE
	}
	if k.Type != wantType || k.MTU != r.MTU || len(k.MultiPath) > 0 || k.Src != nil {
		return false
	}
	if r.Dst.Addr().Is4() && k.Scope != netlink.Scope(r.Scope) {
		return false
	}
	if addrOf(k.Gw) != r.Gateway {
		return false
	}
	if (k.Flags&int(netlink.FLAG_ONLINK) != 0) != r.OnLink {
		return false
	}
	if r.Type == Unicast && r.Iface != "" && k.LinkIndex != ifindex {
		return false
	}
	return true
}

// deleteRequest is the delete message for a route found in a dump. It
// carries the route's identity and, above all, its protocol: the kernel
// deletes only a route whose protocol matches, so a delete of ours can never
// remove a route of someone else even if the table changed since the dump.
func deleteRequest(k netlink.Route) *netlink.Route {
	return &netlink.Route{
		Dst:       k.Dst,
		Family:    k.Family,
		LinkIndex: k.LinkIndex,
		Gw:        k.Gw,
		Table:     k.Table,
		Protocol:  k.Protocol,
		Priority:  k.Priority,
		Tos:       k.Tos,
		Type:      k.Type,
		Scope:     k.Scope,
		MTU:       k.MTU,
		Flags:     k.Flags & int(netlink.FLAG_ONLINK),
	}
}

var protoNames = map[netlink.RouteProtocol]string{
	unix.RTPROT_REDIRECT: "redirect", unix.RTPROT_KERNEL: "kernel", unix.RTPROT_BOOT: "boot",
	unix.RTPROT_STATIC: "static", unix.RTPROT_RA: "ra", unix.RTPROT_DHCP: "dhcp",
	unix.RTPROT_ZEBRA: "zebra", unix.RTPROT_BIRD: "bird", unix.RTPROT_BABEL: "babel",
	unix.RTPROT_BGP: "bgp", unix.RTPROT_ISIS: "isis", unix.RTPROT_OSPF: "ospf",
}

var typeNames = map[int]string{
	unix.RTN_LOCAL: "local", unix.RTN_BROADCAST: "broadcast", unix.RTN_ANYCAST: "anycast",
	unix.RTN_MULTICAST: "multicast", unix.RTN_BLACKHOLE: "blackhole", unix.RTN_UNREACHABLE: "unreachable",
	unix.RTN_PROHIBIT: "prohibit", unix.RTN_THROW: "throw", unix.RTN_NAT: "nat",
}

// FormatKernelRoute renders a route from a dump like iproute2's `ip route`
// (main table, without IPv6's "pref"): "10.65.0.5 dev cali123 proto 98 scope
// link", "blackhole 10.65.0.0/26 proto 98". ifName names an ifindex.
func FormatKernelRoute(k netlink.Route, ifName func(int) string) string {
	var b strings.Builder
	if n, ok := typeNames[k.Type]; ok {
		b.WriteString(n + " ")
	}
	dst, _ := KernelDst(k)
	switch {
	case dst.Bits() == 0:
		b.WriteString("default")
	case dst.IsSingleIP():
		b.WriteString(dst.Addr().String())
	default:
		b.WriteString(dst.String())
	}
	if k.Gw != nil {
		b.WriteString(" via " + addrOf(k.Gw).String())
	}
	if k.LinkIndex > 0 {
		b.WriteString(" dev " + ifName(k.LinkIndex))
	}
	if k.Table != 0 && k.Table != unix.RT_TABLE_MAIN {
		fmt.Fprintf(&b, " table %d", k.Table)
	}
	// Like iproute2, boot (the protocol of `ip route add` without one) is implied.
	if k.Protocol != unix.RTPROT_BOOT {
		if n, ok := protoNames[k.Protocol]; ok {
			b.WriteString(" proto " + n)
		} else {
			fmt.Fprintf(&b, " proto %d", int(k.Protocol))
		}
	}
	switch k.Scope {
	case netlink.SCOPE_UNIVERSE:
	case netlink.SCOPE_LINK:
		b.WriteString(" scope link")
	case netlink.SCOPE_HOST:
		b.WriteString(" scope host")
	case netlink.SCOPE_SITE:
		b.WriteString(" scope site")
	default:
		fmt.Fprintf(&b, " scope %d", int(k.Scope))
	}
	if k.Src != nil {
		b.WriteString(" src " + addrOf(k.Src).String())
	}
	if k.Priority != 0 {
		fmt.Fprintf(&b, " metric %d", k.Priority)
	}
	if k.Flags&int(netlink.FLAG_ONLINK) != 0 {
		b.WriteString(" onlink")
	}
	if k.Flags&unix.RTNH_F_LINKDOWN != 0 {
		b.WriteString(" linkdown")
	}
	if k.MTU != 0 {
		fmt.Fprintf(&b, " mtu %d", k.MTU)
	}
	return b.String()
}
