package dataplane

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// hostSysctls are set on every host-side veth, as Calico's plugin and Felix
// do: the plugin sets them too so that the pod works before the agent's
// next dataplane pass. proxy_arp makes the host answer the pod's ARP for
// 169.254.1.1; proxy_delay=0 answers at once instead of after up to 0.8 s;
// route_localnet allows DNAT to 127.0.0.1 (node-local services).
var hostSysctlsV4 = []sysctlKV{
	{"net/ipv4/conf/%s/route_localnet", "1"},
	{"net/ipv4/neigh/%s/proxy_delay", "0"},
	{"net/ipv4/conf/%s/proxy_arp", "1"},
	{"net/ipv4/conf/%s/forwarding", "1"},
}

// hostSysctlsV6 run before the link goes up: accept_ra=0 so the host never
// takes a route from a pod's router advertisement, proxy_ndp and forwarding
// so the host veth's link-local address answers as the pod's gateway.
var hostSysctlsV6 = []sysctlKV{
	{"net/ipv6/conf/%s/disable_ipv6", "0"},
	{"net/ipv6/conf/%s/accept_ra", "0"},
	{"net/ipv6/conf/%s/proxy_ndp", "1"},
	{"net/ipv6/conf/%s/forwarding", "1"},
}

type sysctlKV struct{ key, value string }

func setSysctls(ifName string, kvs []sysctlKV) error {
	for _, kv := range kvs {
		name := fmt.Sprintf(kv.key, ifName)
		if _, err := sysctl.Sysctl(name, kv.value); err != nil {
			return fmt.Errorf("set sysctl %s=%s: %w", name, kv.value, err)
		}
	}
	return nil
}

// Setup builds the veth pair and configures the pod's end. It runs in the
// host network namespace (the plugin's), with hostNS its handle. On error,
// whatever it created is removed again, so a failed Setup leaves no link
// behind.
func Setup(log *slog.Logger, hostNS ns.NetNS, s Spec) (ifs Interfaces, err error) {
	if len(s.Addrs) == 0 {
		return ifs, errors.New("no addresses to give the pod")
	}
	if ifs, err = CreateLink(log, hostNS, s, s.HasV6()); err != nil {
		return ifs, err
	}
	if err := ConfigurePod(s); err != nil {
		if _, delErr := Teardown(s.PodNetNS, s.PodIfName); delErr != nil {
			log.Error("removing the half-built veth failed", "netns", s.PodNetNS, "err", delErr)
		}
		return ifs, err
	}
	return ifs, nil
}

// CreateLink is the part of Setup that needs no addresses: the veth pair
// with its pod end in the pod's netns (down, unconfigured), and the host
// end's sysctls (the IPv6 ones when the pod gets IPv6), up. It lets the plugin
// build the link while the addresses are still being assigned; ConfigurePod
// finishes the job. On error, whatever it created is removed again.
// s.Addrs is not used.
func CreateLink(log *slog.Logger, hostNS ns.NetNS, s Spec, v6 bool) (ifs Interfaces, err error) {
	// A host veth of this name belongs to an earlier sandbox of the same
	// pod (the name is a hash of namespace and pod): replace it, as Calico
	// does. Its pod end, in a namespace already torn down or about to be,
	// goes with it.
	if old, err := netlink.LinkByName(s.HostIfName); err == nil {
		log.Info("deleting stale host veth of an earlier sandbox", "veth", s.HostIfName)
		if err := netlink.LinkDel(old); err != nil && !isNotFound(err) {
			return ifs, fmt.Errorf("delete stale host veth %s: %w", s.HostIfName, err)
		}
	}

	podNS, err := ns.GetNS(s.PodNetNS)
	if err != nil {
		return ifs, fmt.Errorf("open pod netns %s: %w", s.PodNetNS, err)
	}
	defer podNS.Close()

	created := false
	defer func() {
		if err != nil && created {
			if _, delErr := Teardown(s.PodNetNS, s.PodIfName); delErr != nil {
				log.Error("removing the half-built veth failed", "netns", s.PodNetNS, "err", delErr)
			}
		}
	}()

	err = podNS.Do(func(ns.NetNS) error {
		if _, err := netlink.LinkByName(s.PodIfName); err == nil {
			return fmt.Errorf("interface %s already exists in netns %s: a DEL of the earlier attachment is missing", s.PodIfName, s.PodNetNS)
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name = s.PodIfName
		attrs.MTU = s.MTU
		veth := &netlink.Veth{
			LinkAttrs:        attrs,
			PeerName:         s.HostIfName,
			PeerNamespace:    netlink.NsFd(int(hostNS.Fd())),
			PeerHardwareAddr: HostMAC,
			PeerMTU:          uint32(s.MTU),
		}
		if err := netlink.LinkAdd(veth); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("create veth %s/%s: a link named %s already exists on the host (another pod's?): %w", s.PodIfName, s.HostIfName, s.HostIfName, err)
			}
			return fmt.Errorf("create veth %s (pod) / %s (host): %w", s.PodIfName, s.HostIfName, err)
		}
		created = true
		link, err := netlink.LinkByName(s.PodIfName)
		if err != nil {
			return fmt.Errorf("look up new pod interface %s: %w", s.PodIfName, err)
		}
		ifs.PodIndex = link.Attrs().Index
		ifs.PodMAC = link.Attrs().HardwareAddr
		ifs.MTU = link.Attrs().MTU
		return nil
	})
	if err != nil {
		return ifs, err
	}

	host, err := netlink.LinkByName(s.HostIfName)
	if err != nil {
		return ifs, fmt.Errorf("look up new host veth %s: %w", s.HostIfName, err)
	}
	if err := setSysctls(s.HostIfName, hostSysctlsV4); err != nil {
		return ifs, err
	}
	if v6 {
		if err := setSysctls(s.HostIfName, hostSysctlsV6); err != nil {
			return ifs, err
		}
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return ifs, fmt.Errorf("set host veth %s up: %w", s.HostIfName, err)
	}
	ifs.HostIndex = host.Attrs().Index
	ifs.HostMAC = host.Attrs().HardwareAddr
	return ifs, nil
}

// ConfigurePod finishes what CreateLink started, inside the pod's netns:
// the pod interface up with the addresses of s and the pod's routes. It
// removes nothing on error: the caller tears the link down.
func ConfigurePod(s Spec) error {
	if len(s.Addrs) == 0 {
		return errors.New("no addresses to give the pod")
	}
	return ns.WithNetNSPath(s.PodNetNS, func(ns.NetNS) error {
		link, err := netlink.LinkByName(s.PodIfName)
		if err != nil {
			return fmt.Errorf("look up pod interface %s: %w", s.PodIfName, err)
		}
		return configurePod(link, s)
	})
}

// configurePod runs inside the pod's netns: addresses, then the two routes
// of Calico's gateway trick (the on-link route makes 169.254.1.1 reachable,
// so the default route can use it as next hop).
func configurePod(link netlink.Link, s Spec) error {
	idx := link.Attrs().Index
	if s.HasV6() {
		// A fresh netns may start with IPv6 off on new links.
		if _, err := sysctl.Sysctl(fmt.Sprintf("net/ipv6/conf/%s/disable_ipv6", s.PodIfName), "0"); err != nil {
			return fmt.Errorf("enable IPv6 on %s: %w", s.PodIfName, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", s.PodIfName, err)
	}
	for _, a := range s.Addrs {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.IP, Mask: a.Mask}}
		if a.IP.To4() == nil {
			// Skip duplicate address detection: the address is unique by
			// IPAM, and DAD would keep it unusable for a second or more.
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("add address %s to %s: %w", a.String(), s.PodIfName, err)
		}
	}
	if s.HasV4() {
		onLink := &netlink.Route{
			LinkIndex: idx,
			Dst:       &net.IPNet{IP: GatewayIPv4, Mask: net.CIDRMask(32, 32)},
			Scope:     netlink.SCOPE_LINK,
		}
		if err := netlink.RouteAdd(onLink); err != nil {
			return fmt.Errorf("add route %s dev %s scope link: %w", GatewayIPv4, s.PodIfName, err)
		}
		def := &netlink.Route{LinkIndex: idx, Gw: GatewayIPv4, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}}
		if err := netlink.RouteAdd(def); err != nil {
			return fmt.Errorf("add route default via %s dev %s: %w", GatewayIPv4, s.PodIfName, err)
		}
	}
	if s.HasV6() {
		def := &netlink.Route{LinkIndex: idx, Gw: GatewayIPv6, Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}}
		if err := netlink.RouteAdd(def); err != nil {
			return fmt.Errorf("add route default via %s dev %s: %w", GatewayIPv6, s.PodIfName, err)
		}
	}
	return nil
}

// Teardown deletes the pod's interface, which takes the host end with it.
// A netns or an interface that is already gone is success (CNI DEL is
// idempotent); found says whether there was something to delete. The host
// end is never deleted by name: a newer sandbox of the same pod may own a
// veth of that name by now.
func Teardown(podNetNS, podIfName string) (found bool, err error) {
	if podNetNS == "" {
		return false, nil
	}
	err = ns.WithNetNSPath(podNetNS, func(ns.NetNS) error {
		link, err := netlink.LinkByName(podIfName)
		if err != nil {
			if isNotFound(err) {
				return nil
			}
			return fmt.Errorf("look up %s: %w", podIfName, err)
		}
		if err := netlink.LinkDel(link); err != nil && !isNotFound(err) {
			return fmt.Errorf("delete %s: %w", podIfName, err)
		}
		found = true
		return nil
	})
	var notExist ns.NSPathNotExistErr
	var notNS ns.NSPathNotNSErr
	if errors.As(err, &notExist) || errors.As(err, &notNS) || errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return found, fmt.Errorf("remove %s from netns %s: %w", podIfName, podNetNS, err)
	}
	return found, nil
}

func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, syscall.ENODEV) || errors.Is(err, unix.ENOENT)
}
