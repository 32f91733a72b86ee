package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
)

// Address plan helpers. Rack r is 10.99.r.0/24.

// RackSubnet is rack r's subnet.
func RackSubnet(r int) netip.Prefix { return netip.PrefixFrom(rackAddr(r, 0), 24) }

// ToRAddr is the top-of-rack router's address in rack r (the nodes'
// default gateway).
func ToRAddr(r int) netip.Addr { return rackAddr(r, 1) }

// FabricAddr is the fabric namespace's own address in rack r, where etcd
// is forwarded for the nodes of that rack.
func FabricAddr(r int) netip.Addr { return rackAddr(r, 254) }

// ToRLoopback is an address only the top-of-rack router holds: reaching it
// proves a route through the ToR.
var ToRLoopback = netip.MustParseAddr("10.99.255.1")

func rackAddr(r, host int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 99, byte(r), byte(host)})
}

// Fabric is the namespace that holds one Linux bridge per rack: the racks'
// switches. It does not route between racks (forwarding stays off); only
// the top-of-rack router does.
type Fabric struct {
	NS *NetNS

	mu      sync.Mutex
	racks   map[int]bool
	ports   int
	members map[int][]member // per rack, for static neighbor entries
}

// member is one address on a rack: where it lives and its MAC.
type member struct {
	ns     *NetNS
	ifName string
	ip     netip.Addr
	mac    net.HardwareAddr
}

func (e *env) newFabric(ctx context.Context) (*Fabric, error) {
	n, err := e.newNetNS("fabric")
	if err != nil {
		return nil, err
	}
	if err := n.sysctl(ctx, "net.ipv4.ip_forward=0"); err != nil {
		return nil, err
	}
	return &Fabric{NS: n, racks: map[int]bool{}, members: map[int][]member{}}, nil
}

// rack makes rack r's bridge "br<r>" (with the fabric's address on it)
// unless it exists.
func (f *Fabric) rack(r int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.racks[r] {
		return nil
	}
	if r < 0 || r > 250 {
		return fmt.Errorf("rack %d is out of the address plan (0-250)", r)
	}
	name := fmt.Sprintf("br%d", r)
	err := f.NS.Netlink(func(h *netlink.Handle) error {
		// A bridge without a MAC of its own takes its lowest port's, which
		// changes as ports come: the static neighbor entries need a fixed
		// one (locally administered: 02:...).
		mac := net.HardwareAddr{0x02, 0x99, 0, 0, byte(r), 0xfe}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, HardwareAddr: mac}}
		if err := h.LinkAdd(br); err != nil {
			return fmt.Errorf("add bridge %s: %w", name, err)
		}
		if err := h.AddrAdd(br, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(FabricAddr(r), 24))}); err != nil {
			return fmt.Errorf("address bridge %s: %w", name, err)
		}
		if err := h.LinkSetUp(br); err != nil {
			return err
		}
		l, err := h.LinkByName(name)
		if err != nil {
			return err
		}
		f.members[r] = append(f.members[r], member{ns: f.NS, ifName: name, ip: FabricAddr(r), mac: l.Attrs().HardwareAddr})
		return nil
	})
	if err != nil {
		return fmt.Errorf("make rack %d: %w", r, err)
	}
	f.racks[r] = true
	return nil
}

// Attach wires namespace n to rack r's bridge with a veth whose end in n
// is ifName, holding addr, up. It returns the name of the fabric's end.
func (f *Fabric) Attach(n *NetNS, r int, ifName string, addr netip.Prefix) (string, error) {
	if err := f.rack(r); err != nil {
		return "", err
	}
	f.mu.Lock()
	f.ports++
	port := fmt.Sprintf("p%d", f.ports)
	f.mu.Unlock()
	err := f.NS.Netlink(func(h *netlink.Handle) error {
		v := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: port},
			PeerName:      ifName,
			PeerNamespace: netlink.NsFd(int(n.ns.Fd())),
		}
		if err := h.LinkAdd(v); err != nil {
			return fmt.Errorf("add veth %s to %s: %w", port, n.Name, err)
		}
		br, err := h.LinkByName(fmt.Sprintf("br%d", r))
		if err != nil {
			return err
		}
		l, err := h.LinkByName(port)
		if err != nil {
			return err
		}
		if err := h.LinkSetMaster(l, br); err != nil {
			return fmt.Errorf("attach %s to rack %d: %w", port, r, err)
		}
		return h.LinkSetUp(l)
	})
	if err != nil {
		return "", err
	}
	var mac net.HardwareAddr
	err = n.Netlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName(ifName)
		if err != nil {
			return err
		}
		mac = l.Attrs().HardwareAddr
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
			return fmt.Errorf("address %s in %s: %w", ifName, n.Name, err)
		}
		return h.LinkSetUp(l)
	})
	if err != nil {
		return "", err
	}
	return port, f.addNeighbors(r, member{ns: n, ifName: ifName, ip: addr.Addr(), mac: mac})
}

// addNeighbors gives the new member and every existing member of the rack
// permanent neighbor entries for each other. The kernel's neighbor table
// is one table for every namespace of the machine, and its garbage
// collection threshold (gc_thresh3, 1024 by default, settable only in the
// host's namespace) counts every dynamic entry of every namespace: a
// 50-node mesh would need 2,450 and the ARP of the overflow would fail —
// for the lab and for anyone else on the machine. Permanent entries are
// not counted.
func (f *Fabric) addNeighbors(r int, m member) error {
	f.mu.Lock()
	others := append([]member(nil), f.members[r]...)
	f.members[r] = append(f.members[r], m)
	f.mu.Unlock()
	add := func(in member, of member) error {
		return in.ns.Netlink(func(h *netlink.Handle) error {
			l, err := h.LinkByName(in.ifName)
			if err != nil {
				return err
			}
			err = h.NeighSet(&netlink.Neigh{
				LinkIndex:    l.Attrs().Index,
				Family:       netlink.FAMILY_V4,
				State:        netlink.NUD_PERMANENT,
				IP:           of.ip.AsSlice(),
				HardwareAddr: of.mac,
			})
			if err != nil {
				return fmt.Errorf("neighbor %s in %s: %w", of.ip, in.ns.Name, err)
			}
			return nil
		})
	}
	for _, o := range others {
		if err := add(m, o); err != nil {
			return err
		}
		if err := add(o, m); err != nil {
			return err
		}
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
