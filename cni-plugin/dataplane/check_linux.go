package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Check compares the kernel with what Setup built and the agent programmed:
// the pod interface (up, MAC, MTU, addresses, the gateway routes), the host
// veth (up, MAC ee:ee:ee:ee:ee:ee, peer of the pod interface, proxy ARP and
// forwarding on) and the host route to every pod address through it. It
// runs in the host netns and returns every difference it finds, joined; nil
// means the kernel matches.
func Check(hostNS ns.NetNS, want Expect) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	var podIndex, podPeer = -1, -1
	err := ns.WithNetNSPath(want.PodNetNS, func(ns.NetNS) error {
		link, err := netlink.LinkByName(want.PodIfName)
		if err != nil {
			add("pod interface %s is missing from netns %s", want.PodIfName, want.PodNetNS)
			return nil
		}
		podIndex, podPeer = link.Attrs().Index, link.Attrs().ParentIndex
		checkPod(link, want, add)
		return nil
	})
	if err != nil {
		add("cannot enter pod netns %s: %v", want.PodNetNS, err)
	}

	host, err := netlink.LinkByName(want.HostIfName)
	if err != nil {
		add("host veth %s is missing", want.HostIfName)
		return joinProblems(problems)
	}
	a := host.Attrs()
	if host.Type() != "veth" {
		add("host interface %s is a %s, not a veth", want.HostIfName, host.Type())
	}
	if a.Flags&net.FlagUp == 0 {
		add("host veth %s is down", want.HostIfName)
	}
	if !bytes.Equal(a.HardwareAddr, HostMAC) {
		add("host veth %s has MAC %s, want %s", want.HostIfName, a.HardwareAddr, HostMAC)
	}
	if want.MTU > 0 && a.MTU != want.MTU {
		add("host veth %s has MTU %d, want %d", want.HostIfName, a.MTU, want.MTU)
	}
	if podIndex > 0 && (a.ParentIndex != podIndex || podPeer != a.Index) {
		add("host veth %s is not the peer of %s in netns %s", want.HostIfName, want.PodIfName, want.PodNetNS)
	}
	wantSysctls := hostSysctlsV4
	if want.HasV6() {
		wantSysctls = append(append([]sysctlKV{}, hostSysctlsV4...), hostSysctlsV6...)
	}
	for _, kv := range wantSysctls {
		name := fmt.Sprintf(kv.key, want.HostIfName)
		if got, err := sysctl.Sysctl(name); err != nil {
			add("read sysctl %s: %v", name, err)
		} else if strings.TrimSpace(got) != kv.value {
			add("sysctl %s is %s, want %s", name, strings.TrimSpace(got), kv.value)
		}
	}
	for _, addr := range want.Addrs {
		hp := HostPrefix(addr.IP)
		routes, err := routeListFiltered(family(addr.IP), &netlink.Route{Dst: &hp, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
		if err != nil {
			add("list host routes to %s: %v", hp.String(), err)
			continue
		}
		found := false
		for _, r := range routes {
			if r.LinkIndex == a.Index && r.Gw == nil {
				found = true
			}
		}
		if !found {
			add("host route %s dev %s is missing", hp.String(), want.HostIfName)
		}
	}
	return joinProblems(problems)
}

func checkPod(link netlink.Link, want Expect, add func(string, ...any)) {
	a := link.Attrs()
	if link.Type() != "veth" {
		add("pod interface %s is a %s, not a veth", want.PodIfName, link.Type())
	}
	if a.Flags&net.FlagUp == 0 {
		add("pod interface %s is down", want.PodIfName)
	}
	if len(want.PodMAC) > 0 && !bytes.Equal(a.HardwareAddr, want.PodMAC) {
		add("pod interface %s has MAC %s, the previous result says %s", want.PodIfName, a.HardwareAddr, want.PodMAC)
	}
	if want.MTU > 0 && a.MTU != want.MTU {
		add("pod interface %s has MTU %d, want %d", want.PodIfName, a.MTU, want.MTU)
	}
	addrs, err := addrList(link, netlink.FAMILY_ALL)
	if err != nil {
		add("list addresses of %s: %v", want.PodIfName, err)
	}
	for _, w := range want.Addrs {
		found := false
		for _, got := range addrs {
			if got.IP.Equal(w.IP) && bytes.Equal(got.Mask, w.Mask) {
				found = true
			}
		}
		if !found {
			add("pod interface %s lacks address %s", want.PodIfName, w.String())
		}
	}
	routes, err := routeListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: a.Index, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		add("list routes of %s: %v", want.PodIfName, err)
		return
	}
	var onLink, defV4, defV6 bool
	for _, r := range routes {
		switch {
		case r.Dst != nil && r.Dst.IP.Equal(GatewayIPv4) && ones(r.Dst) == 32 && r.Scope == netlink.SCOPE_LINK:
			onLink = true
		case isDefault(r.Dst) && r.Gw.Equal(GatewayIPv4):
			defV4 = true
		case isDefault(r.Dst) && r.Gw.Equal(GatewayIPv6):
			defV6 = true
		}
	}
	if want.HasV4() {
		if !onLink {
			add("pod route %s dev %s scope link is missing", GatewayIPv4, want.PodIfName)
		}
		if !defV4 {
			add("pod route default via %s dev %s is missing", GatewayIPv4, want.PodIfName)
		}
	}
	if want.HasV6() && !defV6 {
		add("pod route default via %s dev %s is missing", GatewayIPv6, want.PodIfName)
	}
}

func ones(n *net.IPNet) int { o, _ := n.Mask.Size(); return o }

func isDefault(n *net.IPNet) bool { return n == nil || (ones(n) == 0 && n.IP.IsUnspecified()) }

func family(ip net.IP) int {
	if ip.To4() != nil {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func joinProblems(p []string) error {
	if len(p) == 0 {
		return nil
	}
	return errors.New(strings.Join(p, "; "))
}

// Dumps can be interrupted by a concurrent change (many pods starting at
// once); netlink then returns ErrDumpInterrupted and a possibly partial
// answer, so ask again.
const dumpRetries = 5

func addrList(link netlink.Link, fam int) ([]netlink.Addr, error) {
	var err error
	for range dumpRetries {
		var out []netlink.Addr
		if out, err = netlink.AddrList(link, fam); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return nil, err
}

func routeListFiltered(fam int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	var err error
	for range dumpRetries {
		var out []netlink.Route
		if out, err = netlink.RouteListFiltered(fam, filter, mask); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return nil, err
}
