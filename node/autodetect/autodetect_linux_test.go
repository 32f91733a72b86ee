package autodetect

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tabbynet/tabby/internal/testutil"
)

// vethPair creates name<->peer with an address on each end (either may be
// empty) and brings both up.
func vethPair(t *testing.T, name, addr, peer, peerAddr string) {
	t.Helper()
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}); err != nil {
		t.Fatalf("add veth %s/%s: %v", name, peer, err)
	}
	for _, end := range [][2]string{{name, addr}, {peer, peerAddr}} {
		l, err := netlink.LinkByName(end[0])
		if err != nil {
			t.Fatalf("find %s: %v", end[0], err)
		}
		for _, a := range strings.Fields(end[1]) {
			ad, err := netlink.ParseAddr(a)
			if err != nil {
				t.Fatalf("parse %s: %v", a, err)
			}
			// NODAD: an IPv6 address must be usable as a source right away.
			ad.Flags = unix.IFA_F_NODAD
			if err := netlink.AddrAdd(l, ad); err != nil {
				t.Fatalf("add %s to %s: %v", a, end[0], err)
			}
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatalf("up %s: %v", end[0], err)
		}
	}
}

// TestDetectInNetNS runs every method against a real kernel: veth pairs
// stand in for NICs (there is no dummy module here), with Calico-excluded
// names on the far ends.
func TestDetectInNetNS(t *testing.T) {
	testutil.RequirePrivileged(t)
	n := testutil.NewNetNS(t, "tabby-autodetect")
	err := n.Do(func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		vethPair(t, "ens5", "10.10.0.2/24 fd00:10::2/64", "cali0123456789a", "10.99.0.1/24")
		vethPair(t, "ens6", "10.20.0.2/24", "docker0", "172.17.0.1/16")

		// first-found goes from the highest interface index down; compute
		// which of the two NICs that is from the kernel's own numbering.
		e5, _ := net.InterfaceByName("ens5")
		e6, _ := net.InterfaceByName("ens6")
		firstV4 := "10.10.0.2/24"
		if e6.Index > e5.Index {
			firstV4 = "10.20.0.2/24"
		}

		for _, tc := range []struct {
			method string
			family int
			want   string
		}{
			{"first-found", 4, firstV4},
			{"first-found", 6, "fd00:10::2/64"},
			{"interface=^ens5$", 4, "10.10.0.2/24"},
			{"interface=ens6", 4, "10.20.0.2/24"},
			{"interface=eth9", 4, "error: no interface matches"},
			{"interface=docker0", 4, "172.17.0.1/16"},
			{"interface=ens6", 6, "error: matching interfaces (ens6) have no global IPv6 address"},
			{"skip-interface=ens6", 4, "10.10.0.2/24"},
			{"skip-interface=ens5,ens6", 4, "error: no interface has a global IPv4 address (interfaces matching docker*, cali*, veth*, lo, tunl*, ..., ens5, ens6 are never used)"},
			{"cidr=10.20.0.0/16", 4, "10.20.0.2/24"},
			{"cidr=172.16.0.0/12", 4, "172.17.0.1/16"},
			{"cidr=192.168.0.0/16", 4, "error: no interface has a global IPv4 address in 192.168.0.0/16"},
			{"can-reach=10.20.0.77", 4, "10.20.0.2/24"},
			{"can-reach=10.10.0.1", 4, "10.10.0.2/24"},
			{"can-reach=fd00:10::99", 6, "fd00:10::2/64"},
			{"can-reach=192.0.2.1", 4, "error: cannot reach 192.0.2.1 over IPv4: dial udp4 192.0.2.1:80: connect: network is unreachable"},
		} {
			m, err := ParseMethod(tc.method)
			if err != nil {
				t.Fatalf("ParseMethod(%q): %v", tc.method, err)
			}
			got := ""
			if r, err := Detect(m, tc.family, Host()); err != nil {
				got = "error: " + err.Error()
			} else {
				got = r.Prefix.String()
				if r.MTU != 1500 || r.Interface == "" {
					got += fmt.Sprintf(" (interface %q mtu %d)", r.Interface, r.MTU)
				}
			}
			if got != tc.want {
				t.Errorf("%s IPv%d: got %q, want %q", tc.method, tc.family, got, tc.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
