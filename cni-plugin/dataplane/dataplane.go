package dataplane

import (
	"net"
)

// Calico's fixed addressing of every pod interface.
var (
	// HostMAC is the MAC of every host-side veth. Pods see it as the MAC of
	// their gateway; it never leaves the node.
	HostMAC = net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}
	// GatewayIPv4 is the pod's IPv4 next hop. It is assigned nowhere: the
	// host veth answers ARP for it by proxy ARP.
	GatewayIPv4 = net.IPv4(169, 254, 1, 1).To4()
	// GatewayIPv6 is the host veth's EUI-64 link-local address, derived by
	// the kernel from HostMAC; the pod's IPv6 default route points at it.
	GatewayIPv6 = net.ParseIP("fe80::ecee:eeff:feee:eeee")
)

// Spec is the pod interface to build (or check).
type Spec struct {
	HostIfName string      // "cali" + 11 hex chars
	PodIfName  string      // CNI_IFNAME
	PodNetNS   string      // CNI_NETNS, a path
	MTU        int         // both ends
	Addrs      []net.IPNet // host prefixes: /32 and /128
}

// HasV4 and HasV6 tell which families the pod gets.
func (s Spec) HasV4() bool { return s.hasFamily(true) }
func (s Spec) HasV6() bool { return s.hasFamily(false) }

func (s Spec) hasFamily(v4 bool) bool {
	for _, a := range s.Addrs {
		if (a.IP.To4() != nil) == v4 {
			return true
		}
	}
	return false
}

// Interfaces is what Setup built.
type Interfaces struct {
	HostIndex int
	HostMAC   net.HardwareAddr
	PodIndex  int
	PodMAC    net.HardwareAddr
	MTU       int
}

// Expect is what CHECK compares the kernel with: the Spec, plus what the
// previous result recorded (zero values are not compared).
type Expect struct {
	Spec
	PodMAC net.HardwareAddr
}

// HostPrefix narrows an address to a host prefix (/32 or /128), as Calico
// does with what IPAM returns.
func HostPrefix(ip net.IP) net.IPNet {
	if v4 := ip.To4(); v4 != nil {
		return net.IPNet{IP: v4, Mask: net.CIDRMask(32, 32)}
	}
	return net.IPNet{IP: ip.To16(), Mask: net.CIDRMask(128, 128)}
}
