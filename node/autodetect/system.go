package autodetect

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// Interface is one host interface and its addresses, each with the
// interface's prefix length (10.0.0.5/24, not 10.0.0.0/24).
type Interface struct {
	Name  string
	Index int
	MTU   int
	Addrs []netip.Prefix
}

// System is the seam to the host: what interfaces exist, and which source
// address the kernel would use towards a destination.
type System interface {
	// Interfaces lists every interface with every address.
	Interfaces() ([]Interface, error)
	// SourceAddr is the local address the kernel picks to reach dest (an
	// address or a host name) over the given family.
	SourceAddr(dest string, family int) (netip.Addr, error)
}

// Host is the System of the network namespace of the calling thread.
func Host() System { return hostSystem{} }

type hostSystem struct{}

func (hostSystem) Interfaces() ([]Interface, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list host interfaces: %w", err)
	}
	out := make([]Interface, 0, len(ifaces))
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("list addresses of interface %s: %w", ifc.Name, err)
		}
		i := Interface{Name: ifc.Name, Index: ifc.Index, MTU: ifc.MTU}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ones, _ := ipn.Mask.Size()
			i.Addrs = append(i.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
		}
		out = append(out, i)
	}
	return out, nil
}

// SourceAddr connects a UDP socket (which sends nothing) and reads the local
// address the kernel chose, as Calico's can-reach does.
func (hostSystem) SourceAddr(dest string, family int) (netip.Addr, error) {
	network := "udp" + strconv.Itoa(family)
	conn, err := net.Dial(network, net.JoinHostPort(dest, "80"))
	if err != nil {
		return netip.Addr{}, err
	}
	defer conn.Close()
	ua, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok {
		return netip.Addr{}, fmt.Errorf("no local address for %s", dest)
	}
	ip, ok := netip.AddrFromSlice(ua.IP)
	if !ok {
		return netip.Addr{}, fmt.Errorf("no local address for %s", dest)
	}
	return ip.Unmap(), nil
}
