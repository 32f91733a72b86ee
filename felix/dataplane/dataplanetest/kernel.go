// Package dataplanetest provides Kernel, a fake of the two kernel seams of
// package dataplane (Netlink and Sysctls) that models kernel state and shows
// it as text in `ip route` form, for unit tests that cannot run as root. It
// follows the kernel's rules where the reconciler's safety depends on them:
// a replace overwrites whatever route holds the same destination, TOS and
// metric (of any protocol), an exclusive add refuses it, a delete carrying a
// protocol removes only a route of that protocol, removing a device removes
// its routes, and a sysctl of an interface exists only while the interface
// does. It must only be imported from tests.
package dataplanetest

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tabbynet/tabby/felix/dataplane"
)

// Kernel is the fake. The zero value is not usable; call New.
type Kernel struct {
	mu        sync.Mutex
	links     map[string]int
	nextIndex int
	routes    []netlink.Route
	sysctls   map[string]string
	writes    []string
	ops       []string
	faults    map[string]error // "<op> <dst or sysctl name>" → error
	interrupt int
}

var (
	_ dataplane.Netlink = (*Kernel)(nil)
	_ dataplane.Sysctls = (*Kernel)(nil)
)

// New returns a kernel with only "lo" (ifindex 1) and forwarding off.
func New() *Kernel {
	k := &Kernel{
		links:     map[string]int{"lo": 1},
		nextIndex: 2,
		sysctls: map[string]string{
			"net/ipv4/ip_forward":          "0",
			"net/ipv6/conf/all/forwarding": "0",
		},
		faults: map[string]error{},
	}
	return k
}

// AddLink creates an interface (up) with the kernel's default sysctls and
// returns its ifindex. Re-adding a name after DelLink gives a new ifindex.
func (k *Kernel) AddLink(name string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if idx, ok := k.links[name]; ok {
		return idx
	}
	idx := k.nextIndex
	k.nextIndex++
	k.links[name] = idx
	for n, v := range map[string]string{
		"net/ipv4/conf/%s/forwarding":     "0",
		"net/ipv4/conf/%s/route_localnet": "0",
		"net/ipv4/conf/%s/proxy_arp":      "0",
		"net/ipv4/neigh/%s/proxy_delay":   "80",
		"net/ipv6/conf/%s/accept_ra":      "1",
		"net/ipv6/conf/%s/forwarding":     "0",
		"net/ipv6/conf/%s/proxy_ndp":      "0",
	} {
		k.sysctls[fmt.Sprintf(n, name)] = v
	}
	return idx
}

// DelLink removes an interface, its sysctls and every route through it.
func (k *Kernel) DelLink(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	idx, ok := k.links[name]
	if !ok {
		return
	}
	delete(k.links, name)
	k.routes = slices.DeleteFunc(k.routes, func(r netlink.Route) bool { return r.LinkIndex == idx })
	for n := range k.sysctls {
		if strings.Contains(n, "/"+name+"/") {
			delete(k.sysctls, n)
		}
	}
}

// LinkIndex returns the ifindex of name, 0 if it does not exist.
func (k *Kernel) LinkIndex(name string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.links[name]
}

// AddRoute inserts a route given in `ip route` form, e.g.
// "10.65.0.9 dev cali1 proto static scope link" or "blackhole 10.65.0.0/26
// proto 98" (protocol defaults to boot, like `ip route add`). It is the
// test's hand, not the reconciler's, so it is not logged in Ops.
func (k *Kernel) AddRoute(text string) error {
	r, err := k.parse(text)
	if err != nil {
		return fmt.Errorf("parse %q: %w", text, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.insertLocked(r, false, true)
}

// DelRoutes removes every route to dst ("10.65.0.5/32"), whoever owns it,
// like an administrator or another agent would behind the reconciler's back.
func (k *Kernel) DelRoutes(dst string) {
	p := netip.MustParsePrefix(dst)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.routes = slices.DeleteFunc(k.routes, func(r netlink.Route) bool {
		d, _ := dataplane.KernelDst(r)
		return d == p
	})
}

// Routes renders the main table like `ip route; ip -6 route`, one route a
// line, IPv4 first, sorted by destination then metric.
func (k *Kernel) Routes() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	rs := slices.Clone(k.routes)
	slices.SortStableFunc(rs, func(a, b netlink.Route) int {
		da, _ := dataplane.KernelDst(a)
		db, _ := dataplane.KernelDst(b)
		if c := dataplane.ComparePrefix(da, db); c != 0 {
			return c
		}
		return cmp.Compare(a.Priority, b.Priority)
	})
	lines := make([]string, 0, len(rs))
	for _, r := range rs {
		lines = append(lines, dataplane.FormatKernelRoute(r, k.nameLocked))
	}
	return strings.Join(lines, "\n")
}

func (k *Kernel) nameLocked(idx int) string {
	for n, i := range k.links {
		if i == idx {
			return n
		}
	}
	return fmt.Sprintf("if%d", idx)
}

// Sysctl returns the current value of a sysctl ("" if it does not exist).
func (k *Kernel) Sysctl(name string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.sysctls[name]
}

// Writes returns every sysctl write so far as "name=value", in order.
func (k *Kernel) Writes() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.writes)
}

// Ops returns the mutating netlink calls so far, in order, as
// "add <route>", "replace <route>" or "del <route>" (as requested).
func (k *Kernel) Ops() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.ops)
}

// ResetLog forgets Writes and Ops.
func (k *Kernel) ResetLog() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.writes, k.ops = nil, nil
}

// Fail makes every later call of op ("add", "replace", "del" with a
// destination prefix, or "set" with a sysctl name) on target fail with err,
// until Fail is called again with a nil err.
func (k *Kernel) Fail(op, target string, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err == nil {
		delete(k.faults, op+" "+target)
		return
	}
	k.faults[op+" "+target] = err
}

// InterruptDumps makes the next n route dumps fail with
// netlink.ErrDumpInterrupted, as the kernel does when the table changes
// during a dump.
func (k *Kernel) InterruptDumps(n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.interrupt = n
}

// --- dataplane.Netlink ---

// RouteListFiltered returns copies of the routes of family; with
// RT_FILTER_TABLE only those of filter.Table.
func (k *Kernel) RouteListFiltered(family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.interrupt > 0 {
		k.interrupt--
		return nil, netlink.ErrDumpInterrupted // like netlink.RouteListFiltered: no partial result
	}
	var out []netlink.Route
	for _, r := range k.routes {
		if r.Family != family {
			continue
		}
		if mask&netlink.RT_FILTER_TABLE != 0 && filter != nil && filter.Table != 0 && r.Table != filter.Table {
			continue
		}
		out = append(out, copyRoute(r))
	}
	return out, nil
}

// RouteAdd is an exclusive create: EEXIST if any route holds the key.
func (k *Kernel) RouteAdd(r *netlink.Route) error { return k.write("add", r, false) }

// RouteReplace overwrites the route at the key, whoever owns it, or creates one.
func (k *Kernel) RouteReplace(r *netlink.Route) error { return k.write("replace", r, true) }

func (k *Kernel) write(op string, req *netlink.Route, replace bool) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	r := copyRoute(*req)
	if r.Protocol == 0 {
		r.Protocol = unix.RTPROT_BOOT // netlink's default for new routes
	}
	k.ops = append(k.ops, op+" "+dataplane.FormatKernelRoute(r, k.nameLocked))
	if err := k.faultLocked(op, r); err != nil {
		return err
	}
	return k.insertLocked(r, replace, false)
}

func (k *Kernel) faultLocked(op string, r netlink.Route) error {
	dst, _ := dataplane.KernelDst(r)
	return k.faults[op+" "+dst.String()]
}

func (k *Kernel) insertLocked(r netlink.Route, replace, fromText bool) error {
	dst, ok := dataplane.KernelDst(r)
	if !ok {
		return unix.EINVAL
	}
	v6 := dst.Addr().Is6()
	r.Family = unix.AF_INET
	if v6 {
		r.Family = unix.AF_INET6
		r.Scope = netlink.SCOPE_UNIVERSE // IPv6 has no route scopes
		if r.Priority == 0 {
			r.Priority = 1024
		}
	}
	if r.Table == 0 {
		r.Table = unix.RT_TABLE_MAIN
	}
	if r.Type == 0 {
		r.Type = unix.RTN_UNICAST
	}
	switch r.Type {
	case unix.RTN_BLACKHOLE, unix.RTN_UNREACHABLE, unix.RTN_PROHIBIT:
		if r.Gw != nil {
			return unix.EINVAL
		}
		r.LinkIndex = 0
		if v6 {
			r.LinkIndex = 1 // IPv6 reject routes point at lo
		}
	case unix.RTN_UNICAST:
		if err := k.resolveNexthopLocked(&r, dst); err != nil {
			return err
		}
	default:
		if !fromText {
			return unix.EINVAL
		}
	}
	key := func(o netlink.Route) bool {
		od, _ := dataplane.KernelDst(o)
		return od == dst && o.Tos == r.Tos && o.Priority == r.Priority && o.Table == r.Table
	}
	if i := slices.IndexFunc(k.routes, key); i >= 0 {
		if !replace {
			return unix.EEXIST
		}
		k.routes[i] = r
		return nil
	}
	k.routes = append(k.routes, r)
	return nil
}

// resolveNexthopLocked checks a unicast route's device and gateway the way
// the kernel does: the device must exist, a gateway without onlink must be
// covered by a connected route (which also gives the device when none was
// named), and an onlink gateway needs a device.
func (k *Kernel) resolveNexthopLocked(r *netlink.Route, dst netip.Prefix) error {
	if r.LinkIndex > 0 && !slices.Contains(slices.Collect(maps.Values(k.links)), r.LinkIndex) {
		return unix.ENODEV
	}
	if r.Gw == nil {
		if r.LinkIndex == 0 {
			return unix.EINVAL
		}
		return nil
	}
	gw, _ := netip.AddrFromSlice(r.Gw)
	gw = gw.Unmap()
	if gw.Is4() != dst.Addr().Is4() {
		return unix.EINVAL
	}
	if r.Flags&int(netlink.FLAG_ONLINK) != 0 {
		if r.LinkIndex == 0 {
			return unix.EINVAL
		}
		return nil
	}
	for _, c := range k.routes {
		cd, _ := dataplane.KernelDst(c)
		if c.Gw == nil && c.LinkIndex > 0 && c.Type == unix.RTN_UNICAST && cd.Contains(gw) &&
			(r.LinkIndex == 0 || r.LinkIndex == c.LinkIndex) {
			r.LinkIndex = c.LinkIndex
			return nil
		}
	}
	return unix.ENETUNREACH
}

// RouteDel removes the first route matching the request the way the kernel
// matches deletes: destination and table always; protocol, metric, type,
// device, gateway and MTU when given; the scope (IPv4) unless it is
// RT_SCOPE_NOWHERE. ESRCH when nothing matches.
func (k *Kernel) RouteDel(req *netlink.Route) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ops = append(k.ops, "del "+dataplane.FormatKernelRoute(*req, k.nameLocked))
	if err := k.faultLocked("del", *req); err != nil {
		return err
	}
	dst, ok := dataplane.KernelDst(*req)
	if !ok {
		return unix.EINVAL
	}
	table := cmp.Or(req.Table, unix.RT_TABLE_MAIN)
	i := slices.IndexFunc(k.routes, func(r netlink.Route) bool {
		d, _ := dataplane.KernelDst(r)
		switch {
		case d != dst || r.Table != table:
			return false
		case req.Protocol != 0 && r.Protocol != req.Protocol:
			return false
		case req.Priority != 0 && r.Priority != req.Priority:
			return false
		case req.Type != 0 && r.Type != req.Type:
			return false
		case dst.Addr().Is4() && req.Scope != netlink.SCOPE_NOWHERE && r.Scope != req.Scope:
			return false
		case req.LinkIndex != 0 && r.LinkIndex != req.LinkIndex:
			return false
		case req.Gw != nil && !req.Gw.Equal(r.Gw):
			return false
		case req.MTU != 0 && r.MTU != req.MTU:
			return false
		}
		return true
	})
	if i < 0 {
		return unix.ESRCH
	}
	k.routes = slices.Delete(k.routes, i, i+1)
	return nil
}

// LinkByName returns a device with the name and ifindex, or an error
// wrapping ENODEV.
func (k *Kernel) LinkByName(name string) (netlink.Link, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	idx, ok := k.links[name]
	if !ok {
		return nil, fmt.Errorf("link %s not found: %w", name, unix.ENODEV)
	}
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: name, Index: idx}}, nil
}

// --- dataplane.Sysctls ---

// Get reads a sysctl; ENOENT if it does not exist.
func (k *Kernel) Get(name string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.sysctls[name]
	if !ok {
		return "", fmt.Errorf("read sysctl %s: %w", name, unix.ENOENT)
	}
	return v, nil
}

// Set writes a sysctl (recorded in Writes); ENOENT if it does not exist.
func (k *Kernel) Set(name, value string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.faults["set "+name]; err != nil {
		return err
	}
	if _, ok := k.sysctls[name]; !ok {
		return fmt.Errorf("write sysctl %s: %w", name, unix.ENOENT)
	}
	k.sysctls[name] = value
	k.writes = append(k.writes, name+"="+value)
	return nil
}

// SysctlNames lists every sysctl the fake has, sorted (for tests that check
// nothing unexpected was created).
func (k *Kernel) SysctlNames() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Sorted(maps.Keys(k.sysctls))
}

// --- text form ---

var protoByName = map[string]netlink.RouteProtocol{
	"kernel": unix.RTPROT_KERNEL, "boot": unix.RTPROT_BOOT, "static": unix.RTPROT_STATIC,
	"zebra": unix.RTPROT_ZEBRA, "bird": unix.RTPROT_BIRD, "bgp": unix.RTPROT_BGP, "dhcp": unix.RTPROT_DHCP,
}

var typeByName = map[string]int{
	"blackhole": unix.RTN_BLACKHOLE, "unreachable": unix.RTN_UNREACHABLE, "prohibit": unix.RTN_PROHIBIT,
}

// parse reads the `ip route` form that FormatKernelRoute writes.
func (k *Kernel) parse(text string) (netlink.Route, error) {
	f := strings.Fields(text)
	r := netlink.Route{Protocol: unix.RTPROT_BOOT, Type: unix.RTN_UNICAST, Table: unix.RT_TABLE_MAIN}
	if len(f) > 0 {
		if t, ok := typeByName[f[0]]; ok {
			r.Type = t
			f = f[1:]
		}
	}
	if len(f) == 0 {
		return r, errors.New("no destination")
	}
	dst, err := parseDst(f[0])
	if err != nil {
		return r, err
	}
	r.Dst = &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())}
	if !dst.Addr().Is4() {
		r.Family = unix.AF_INET6
	}
	f = f[1:]
	scopeSet := false
	for len(f) > 0 {
		word := f[0]
		if word == "onlink" {
			r.Flags |= int(netlink.FLAG_ONLINK)
			f = f[1:]
			continue
		}
		if len(f) < 2 {
			return r, fmt.Errorf("%q needs a value", word)
		}
		val := f[1]
		f = f[2:]
		switch word {
		case "via":
			gw, err := netip.ParseAddr(val)
			if err != nil {
				return r, err
			}
			r.Gw = gw.AsSlice()
		case "dev":
			k.mu.Lock()
			idx, ok := k.links[val]
			k.mu.Unlock()
			if !ok {
				return r, fmt.Errorf("no device %s", val)
			}
			r.LinkIndex = idx
		case "proto":
			if p, ok := protoByName[val]; ok {
				r.Protocol = p
			} else if n, err := strconv.Atoi(val); err == nil {
				r.Protocol = netlink.RouteProtocol(n)
			} else {
				return r, fmt.Errorf("unknown protocol %q", val)
			}
		case "scope":
			scopeSet = true
			switch val {
			case "link":
				r.Scope = netlink.SCOPE_LINK
			case "host":
				r.Scope = netlink.SCOPE_HOST
			case "global", "universe":
				r.Scope = netlink.SCOPE_UNIVERSE
			default:
				return r, fmt.Errorf("unknown scope %q", val)
			}
		case "metric":
			if r.Priority, err = strconv.Atoi(val); err != nil {
				return r, err
			}
		case "mtu":
			if r.MTU, err = strconv.Atoi(val); err != nil {
				return r, err
			}
		case "table":
			if r.Table, err = strconv.Atoi(val); err != nil {
				return r, err
			}
		default:
			return r, fmt.Errorf("unknown keyword %q", word)
		}
	}
	// Like `ip route add`: a device route without a gateway is scope link.
	if !scopeSet && r.Type == unix.RTN_UNICAST && r.Gw == nil && r.LinkIndex > 0 {
		r.Scope = netlink.SCOPE_LINK
	}
	return r, nil
}

func parseDst(s string) (netip.Prefix, error) {
	switch s {
	case "default":
		return netip.MustParsePrefix("0.0.0.0/0"), nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func copyRoute(r netlink.Route) netlink.Route {
	if r.Dst != nil {
		r.Dst = &net.IPNet{IP: slices.Clone(r.Dst.IP), Mask: slices.Clone(r.Dst.Mask)}
	}
	r.Gw = slices.Clone(r.Gw)
	r.Src = slices.Clone(r.Src)
	r.MultiPath = nil
	return r
}
