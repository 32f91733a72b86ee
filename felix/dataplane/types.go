package dataplane

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// RouteProtocol is the rtm_protocol number on every route Tabby writes
// ("proto 98" in `ip route`). A private number lets Tabby own exactly what it
// wrote: the prune step deletes only protocol-98 routes, so routes of the
// kernel (2), of an administrator (boot 3, static 4), of BIRD (12), of Calico
// (80) or of anyone else are never touched, and leftovers from a previous
// Tabby process are recognised and cleaned up. 98 is unassigned in iproute2's
// rt_protos and is not used by Calico, BIRD, FRR or the routing daemons listed
// there. Calico puts its own routes under 80 (and workload routes under boot),
// so Tabby and a Calico being replaced on the same node can tell theirs apart.
const RouteProtocol = 98

// RouteType is the kernel route type Tabby programs.
type RouteType uint8

const (
	// Unicast forwards to a device and/or a gateway.
	Unicast RouteType = iota
	// Blackhole silently drops: one per IPAM block this node owns, so that
	// traffic to an unallocated address of the block does not loop through
	// the default route.
	Blackhole
)

func (t RouteType) String() string {
	switch t {
	case Unicast:
		return "unicast"
	case Blackhole:
		return "blackhole"
	}
	return fmt.Sprintf("RouteType(%d)", uint8(t))
}

// Scope is the route scope; the values are the kernel's (RT_SCOPE_*).
type Scope uint8

const (
	// ScopeUniverse is a route via a gateway (or a blackhole).
	ScopeUniverse Scope = 0
	// ScopeLink is a directly connected destination: a workload behind its veth.
	ScopeLink Scope = 253
)

// Source says which part of Tabby wants a route. It is not programmed into
// the kernel and does not take part in comparisons: it is for logs, metrics
// and for felix/calc to choose between producers wanting the same prefix.
type Source uint8

const (
	SourceUnknown Source = iota
	// SourceLocalWorkload is `<podIP>/32 dev caliX scope link`.
	SourceLocalWorkload
	// SourceLocalBlock is `blackhole <block>` for a block affine to this node.
	SourceLocalBlock
	// SourceRemoteBlock is a block of another node learned over BGP:
	// `<block> via <nodeIP>`, or through tunl0/vxlan.calico onlink.
	SourceRemoteBlock
	// SourceRemoteWorkload is a borrowed address of another node (a /32
	// outside that node's blocks) learned over BGP.
	SourceRemoteWorkload
)

func (s Source) String() string {
	switch s {
	case SourceUnknown:
		return "unknown"
	case SourceLocalWorkload:
		return "local-workload"
	case SourceLocalBlock:
		return "local-block"
	case SourceRemoteBlock:
		return "remote-block"
	case SourceRemoteWorkload:
		return "remote-workload"
	}
	return fmt.Sprintf("Source(%d)", uint8(s))
}

// Route is one route Tabby wants in the main table. The shapes in use:
//
//	local workload:  {Dst: 10.65.0.5/32, Iface: "cali123", Scope: ScopeLink}
//	owned block:     {Dst: 10.65.0.0/26, Type: Blackhole}
//	remote, plain:   {Dst: 10.65.1.0/26, Gateway: 192.168.0.2}            (kernel picks the device)
//	remote, IPIP:    {Dst: 10.65.1.0/26, Gateway: 192.168.0.2, Iface: "tunl0", OnLink: true, MTU: 1480}
//	remote, VXLAN:   {Dst: 10.65.1.0/26, Gateway: <VTEP IP>, Iface: "vxlan.calico", OnLink: true}
type Route struct {
	Dst  netip.Prefix
	Type RouteType
	// Iface is the output device by name. Empty is allowed only for a
	// Unicast route with a Gateway (the kernel resolves the device) and is
	// required to be empty for a Blackhole.
	Iface   string
	Gateway netip.Addr
	// OnLink says the gateway is reachable on Iface without a covering
	// route (tunnels); it needs both Gateway and Iface.
	OnLink bool
	// Scope is ScopeLink for device routes, ScopeUniverse otherwise. IPv6
	// has no route scopes: the kernel stores universe whatever is asked, so
	// the reconciler ignores Scope for IPv6 routes.
	Scope Scope
	// Metric is the route priority; 0 means the kernel default (0 for IPv4,
	// 1024 for IPv6). Together with Dst it identifies a route in the kernel.
	Metric int
	// MTU is a per-route path MTU (tunnels); 0 means none.
	MTU    int
	Source Source
}

// Equal reports whether r and o would program the same kernel route
// (Source is ignored).
func (r Route) Equal(o Route) bool {
	r.Source, o.Source = 0, 0
	return r == o
}

// String renders the route the way `ip route` would (without the protocol).
func (r Route) String() string {
	var b strings.Builder
	if r.Type == Blackhole {
		b.WriteString("blackhole ")
	}
	b.WriteString(r.Dst.String())
	if r.Gateway.IsValid() {
		b.WriteString(" via " + r.Gateway.String())
	}
	if r.Iface != "" {
		b.WriteString(" dev " + r.Iface)
	}
	if r.Scope == ScopeLink {
		b.WriteString(" scope link")
	}
	if r.Metric != 0 {
		fmt.Fprintf(&b, " metric %d", r.Metric)
	}
	if r.OnLink {
		b.WriteString(" onlink")
	}
	if r.MTU != 0 {
		fmt.Fprintf(&b, " mtu %d", r.MTU)
	}
	return b.String()
}

// validate checks the combinations the kernel would refuse or misread.
func (r Route) validate() error {
	switch {
	case !r.Dst.IsValid():
		return fmt.Errorf("invalid destination")
	case r.Dst != r.Dst.Masked():
		return fmt.Errorf("destination %s has host bits set", r.Dst)
	case r.Gateway.IsValid() && r.Gateway.Is4() != r.Dst.Addr().Is4():
		return fmt.Errorf("gateway %s and destination %s are of different families", r.Gateway, r.Dst)
	case r.Metric < 0 || r.MTU < 0:
		return fmt.Errorf("negative metric or MTU")
	case r.Iface != "" && !validIfaceName(r.Iface):
		return fmt.Errorf("invalid interface name %q", r.Iface)
	}
	switch r.Type {
	case Blackhole:
		if r.Iface != "" || r.Gateway.IsValid() || r.OnLink {
			return fmt.Errorf("a blackhole route has no device or gateway")
		}
	case Unicast:
		if r.Iface == "" && !r.Gateway.IsValid() {
			return fmt.Errorf("a unicast route needs a device or a gateway")
		}
		if r.OnLink && (r.Iface == "" || !r.Gateway.IsValid()) {
			return fmt.Errorf("an onlink route needs both a device and a gateway")
		}
	default:
		return fmt.Errorf("unknown route type %v", r.Type)
	}
	return nil
}

// validIfaceName mirrors the kernel's dev_valid_name: it also keeps sysctl
// paths built from the name inside /proc/sys/net/.../conf/.
func validIfaceName(name string) bool {
	return name != "" && len(name) < 16 && name != "." && name != ".." &&
		!strings.ContainsAny(name, "/: \t\n")
}

// State is the whole desired (or reached) dataplane state, as a value.
type State struct {
	// Routes are keyed by destination: one route per prefix. The key must
	// equal the route's Dst.
	Routes map[netip.Prefix]Route
	// WorkloadIfaces are the host-side veths (cali*) that get the workload
	// sysctls: proxy_arp, proxy_delay, forwarding, route_localnet, and the
	// IPv6 ones when IPv6Forwarding is set.
	WorkloadIfaces map[string]struct{}
	// IPv4Forwarding makes sure net.ipv4.ip_forward is 1. False means
	// "leave it alone", never "turn it off": other software on the node may
	// depend on forwarding.
	IPv4Forwarding bool
	// IPv6Forwarding makes sure net.ipv6.conf.all.forwarding is 1 and gives
	// workload interfaces their IPv6 sysctls (proxy_ndp, forwarding,
	// accept_ra=0).
	IPv6Forwarding bool
	// KeepRemoteRoutes keeps (does not prune) routes of ours via a gateway
	// that Routes does not list. Felix sets it until BGP reports its initial
	// sync after an agent restart: those routes were learned by the previous
	// run and are being learned again, and deleting them in between would
	// drop traffic that is still flowing. It is an instruction, not state:
	// Equal ignores it and a reached State never has it.
	KeepRemoteRoutes bool
	// Incremental lets Apply write only what changed since the previous
	// apply, without dumping the routing table, when that apply fully
	// succeeded. It is what makes a burst of BGP routes (100,000 arriving
	// in batches) cost the writes and not a full table dump per batch.
	// Felix leaves it off for its periodic resync, which repairs anything
	// changed behind Tabby's back. Like KeepRemoteRoutes, an instruction:
	// Equal ignores it. The reconciler may keep an incremental State's
	// maps as its record of the kernel: do not modify them afterwards.
	Incremental bool
}

// NewState returns an empty State with its maps allocated.
func NewState() State {
	return State{Routes: map[netip.Prefix]Route{}, WorkloadIfaces: map[string]struct{}{}}
}

// AddRoute sets r in s.Routes under its destination.
func (s *State) AddRoute(r Route) {
	if s.Routes == nil {
		s.Routes = map[netip.Prefix]Route{}
	}
	s.Routes[r.Dst] = r
}

// AddIface adds a workload interface.
func (s *State) AddIface(name string) {
	if s.WorkloadIfaces == nil {
		s.WorkloadIfaces = map[string]struct{}{}
	}
	s.WorkloadIfaces[name] = struct{}{}
}

// Clone returns a deep copy.
func (s State) Clone() State {
	c := s
	c.Routes = maps.Clone(s.Routes)
	c.WorkloadIfaces = maps.Clone(s.WorkloadIfaces)
	return c
}

// Equal compares two states (route Sources are ignored; nil and empty maps
// are equal).
func (s State) Equal(o State) bool {
	if s.IPv4Forwarding != o.IPv4Forwarding || s.IPv6Forwarding != o.IPv6Forwarding ||
		len(s.Routes) != len(o.Routes) || len(s.WorkloadIfaces) != len(o.WorkloadIfaces) {
		return false
	}
	for k, r := range s.Routes {
		if or, ok := o.Routes[k]; !ok || !or.Equal(r) {
			return false
		}
	}
	for k := range s.WorkloadIfaces {
		if _, ok := o.WorkloadIfaces[k]; !ok {
			return false
		}
	}
	return true
}

// String renders the state one item per line, sorted, for logs and golden
// test output.
func (s State) String() string {
	var lines []string
	for _, dst := range SortedPrefixes(s.Routes) {
		lines = append(lines, "route "+s.Routes[dst].String())
	}
	for _, name := range slices.Sorted(maps.Keys(s.WorkloadIfaces)) {
		lines = append(lines, "iface "+name)
	}
	if s.IPv4Forwarding {
		lines = append(lines, "ipv4 forwarding")
	}
	if s.IPv6Forwarding {
		lines = append(lines, "ipv6 forwarding")
	}
	return strings.Join(lines, "\n")
}

// SortedPrefixes returns the keys of m in a stable order: IPv4 before IPv6,
// then by address, then by length.
func SortedPrefixes[V any](m map[netip.Prefix]V) []netip.Prefix {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, ComparePrefix)
	return keys
}

// ComparePrefix orders prefixes by family, address, then length.
func ComparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
