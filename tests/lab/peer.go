package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// Peer is a router that is not Tabby (BIRD or FRR) in its own namespace on
// a rack, at 10.99.<rack>.100 and up.
type Peer struct {
	Name string
	Rack int
	IP   netip.Addr
	NS   *NetNS
	// Port is the fabric's end of its link.
	Port string
	BIRD *BIRD
	FRR  *FRR

	lab   *Lab
	stubs int
}

// AddPeer makes a peer's namespace, wired to rack with a default route
// through the ToR (metric 4096) and forwarding on; start a daemon with
// StartBIRD or StartFRR.
func (l *Lab) AddPeer(ctx context.Context, name string, rack int) (*Peer, error) {
	l.mu.Lock()
	idx := l.peerIdx
	l.peerIdx++
	l.mu.Unlock()
	if idx >= 150 {
		return nil, errors.New("too many peers (150)")
	}
	p := &Peer{Name: name, Rack: rack, IP: rackAddr(rack, 100+idx), lab: l}
	var err error
	if p.NS, err = l.env.newNetNS(name); err != nil {
		return nil, err
	}
	if p.Port, err = l.Fabric.Attach(p.NS, rack, "eth0", netip.PrefixFrom(p.IP, 24)); err != nil {
		return nil, fmt.Errorf("wire peer %s: %w", name, err)
	}
	if err := p.NS.Netlink(func(h *netlink.Handle) error {
		return h.RouteAdd(&netlink.Route{Dst: ipNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: ToRAddr(rack).AsSlice(), Priority: staticDefaultMetric})
	}); err != nil {
		return nil, fmt.Errorf("default route of peer %s: %w", name, err)
	}
	if err := p.NS.sysctl(ctx, "net.ipv4.ip_forward=1"); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.Peers = append(l.Peers, p)
	l.mu.Unlock()
	return p, nil
}

// StartBIRD runs BIRD in the peer's namespace (RouterID defaults to the
// peer's address).
func (p *Peer) StartBIRD(ctx context.Context, cfg BIRDConfig) error {
	if !cfg.RouterID.IsValid() {
		cfg.RouterID = p.IP
	}
	b, err := p.lab.env.startBIRD(ctx, p.NS, p.Name, cfg)
	if err != nil {
		return err
	}
	p.BIRD = b
	return nil
}

// StartFRR runs zebra and bgpd in the peer's namespace (RouterID defaults
// to the peer's address).
func (p *Peer) StartFRR(ctx context.Context, cfg FRRConfig) error {
	if !cfg.RouterID.IsValid() {
		cfg.RouterID = p.IP
	}
	f, err := p.lab.env.startFRR(ctx, p.NS, p.Name, cfg)
	if err != nil {
		return err
	}
	p.FRR = f
	return nil
}

// AddStub makes a host behind the peer, as a pod behind a node: its own
// namespace with eth0 holding ip/32 and a default route to 169.254.1.1,
// which the peer answers by proxy ARP and routes back with ip/32 dev
// <veth>. It is the far end of pings to "a pod" of a router that is not
// Tabby.
func (p *Peer) AddStub(ctx context.Context, ip netip.Addr) (*NetNS, error) {
	p.stubs++
	n, err := p.lab.env.newNetNS(fmt.Sprintf("%s-stub%d", p.Name, p.stubs))
	if err != nil {
		return nil, err
	}
	host := fmt.Sprintf("stub%d", p.stubs)
	err = p.NS.Netlink(func(h *netlink.Handle) error {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(n.ns.Fd()))}
		if err := h.LinkAdd(v); err != nil {
			return err
		}
		l, err := h.LinkByName(host)
		if err != nil {
			return err
		}
		if err := h.LinkSetUp(l); err != nil {
			return err
		}
		return h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(netip.PrefixFrom(ip, 32)), Scope: netlink.SCOPE_LINK})
	})
	if err != nil {
		return nil, fmt.Errorf("wire stub %s behind %s: %w", ip, p.Name, err)
	}
	if err := p.NS.sysctl(ctx, "net.ipv4.conf."+host+".proxy_arp=1"); err != nil {
		return nil, err
	}
	err = n.Netlink(func(h *netlink.Handle) error {
		l, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(ip, 32))}); err != nil {
			return err
		}
		if err := h.LinkSetUp(l); err != nil {
			return err
		}
		gw := netip.MustParseAddr("169.254.1.1")
		if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(netip.PrefixFrom(gw, 32)), Scope: netlink.SCOPE_LINK}); err != nil {
			return err
		}
		return h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: gw.AsSlice()})
	})
	if err != nil {
		return nil, fmt.Errorf("address stub %s: %w", ip, err)
	}
	return n, nil
}
