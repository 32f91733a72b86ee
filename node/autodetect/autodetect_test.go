package autodetect

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// fakeSystem models the host as a list of interfaces; reach maps a
// destination to the source address the "kernel" would choose.
type fakeSystem struct {
	ifaces []Interface
	reach  map[string]string
}

func (f fakeSystem) Interfaces() ([]Interface, error) { return f.ifaces, nil }

func (f fakeSystem) SourceAddr(dest string, family int) (netip.Addr, error) {
	src, ok := f.reach[dest]
	if !ok {
		return netip.Addr{}, errors.New("connect: network is unreachable")
	}
	return netip.MustParseAddr(src), nil
}

// host parses "name index mtu addr/len addr/len ..." lines.
func host(lines ...string) fakeSystem {
	var f fakeSystem
	for i, l := range lines {
		fields := strings.Fields(l)
		ifc := Interface{Name: fields[0], Index: i + 1, MTU: 1500}
		for _, a := range fields[1:] {
			ifc.Addrs = append(ifc.Addrs, netip.MustParsePrefix(a))
		}
		f.ifaces = append(f.ifaces, ifc)
	}
	return f
}

func TestParseMethodErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"bogus", "unknown autodetection method: use first-found, can-reach=DEST, interface=REGEX[,REGEX], skip-interface=REGEX[,REGEX] or cidr=CIDR[,CIDR]"},
		{"first-found=x", "unknown autodetection method"},
		{"interface=", "interface= needs at least one interface name regex, e.g. interface=^eth0$"},
		{"interface=eth0,(", `interface regex "(" is not valid: error parsing regexp: missing closing ): ` + "`(`"},
		{"skip-interface= , ", "skip-interface= needs at least one interface name regex"},
		{"cidr=10.0.0.0/33", `"10.0.0.0/33" is not a CIDR (write it like 10.0.0.0/8)`},
		{"cidr=10.0.0.1", `"10.0.0.1" is not a CIDR`},
		{"can-reach=", "can-reach= needs an address or host name"},
		{"kubernetes-internal-ip", "kubernetes-internal-ip needs the Kubernetes datastore"},
	} {
		_, err := ParseMethod(tc.in)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("ParseMethod(%q) = %v, want an error starting %q", tc.in, err, tc.want)
		}
	}
}

func TestParseMethodForms(t *testing.T) {
	for in, want := range map[string]string{
		"":                               "first-found",
		"first-found":                    "first-found",
		"interface=eth0, ens.*":          "interface=eth0,ens.*",
		"skip-interface=eth1":            "skip-interface=eth1",
		"cidr=10.1.2.3/16, fd00::1/64":   "cidr=10.1.0.0/16,fd00::/64",
		"can-reach=www.example.com":      "can-reach=www.example.com",
		"can-reach=10.0.0.1":             "can-reach=10.0.0.1",
		" interface=^eth0$ ":             "interface=^eth0$",
		"skip-interface=^eth1$,^ens5$,,": "skip-interface=^eth1$,^ens5$",
	} {
		m, err := ParseMethod(in)
		if err != nil {
			t.Errorf("ParseMethod(%q): %v", in, err)
			continue
		}
		if m.String() != want {
			t.Errorf("ParseMethod(%q).String() = %q, want %q", in, m.String(), want)
		}
	}
}

func TestDetect(t *testing.T) {
	sys := host(
		"lo 127.0.0.1/8 ::1/128",
		"eth0 192.168.1.10/24 fe80::1/64 2001:db8::10/64",
		"eth1 10.0.0.5/16",
		"docker0 172.17.0.1/16",
		"cali1234567890a 169.254.1.1/32",
		"br-abc 172.18.0.1/16",
		"ens7",
		"tunl0 10.244.0.1/32",
	)
	sys.reach = map[string]string{"192.168.1.1": "192.168.1.10", "203.0.113.9": "198.51.100.1"}
	for _, tc := range []struct {
		method  string
		family  int
		want    string // address or error text
		wantErr bool
	}{
		// Calico tries interfaces from the highest index down: eth1 before eth0.
		{"first-found", 4, "10.0.0.5/16", false},
		{"first-found", 6, "2001:db8::10/64", false},
		{"skip-interface=eth1", 4, "192.168.1.10/24", false},
		{"skip-interface=eth.*", 4, "no interface has a global IPv4 address (interfaces matching docker*, cali*, veth*, lo, tunl*, ..., eth.* are never used)", true},
		{"interface=eth0", 4, "192.168.1.10/24", false},
		{"interface=^eth", 4, "10.0.0.5/16", false},
		// interface= names are not filtered by Calico's exclusions.
		{"interface=docker0", 4, "172.17.0.1/16", false},
		{"interface=eth9", 4, "no interface matches", true},
		{"interface=ens7", 4, "matching interfaces (ens7) have no global IPv4 address", true},
		{"interface=eth1", 6, "matching interfaces (eth1) have no global IPv6 address", true},
		{"cidr=192.168.0.0/16", 4, "192.168.1.10/24", false},
		{"cidr=172.16.0.0/12", 4, "172.18.0.1/16", false},
		{"cidr=10.9.0.0/16,10.8.0.0/16", 4, "no interface has a global IPv4 address in 10.9.0.0/16,10.8.0.0/16", true},
		{"can-reach=192.168.1.1", 4, "192.168.1.10/24", false},
		{"can-reach=10.99.0.1", 4, "cannot reach 10.99.0.1 over IPv4: connect: network is unreachable", true},
		{"can-reach=203.0.113.9", 4, "the source address towards 203.0.113.9, 198.51.100.1, is on no local interface", true},
	} {
		m, err := ParseMethod(tc.method)
		if err != nil {
			t.Fatalf("ParseMethod(%q): %v", tc.method, err)
		}
		r, err := Detect(m, tc.family, sys)
		switch {
		case tc.wantErr && err == nil:
			t.Errorf("%s (IPv%d): got %s, want error %q", tc.method, tc.family, r.Prefix, tc.want)
		case tc.wantErr && err.Error() != tc.want:
			t.Errorf("%s (IPv%d): error %q, want %q", tc.method, tc.family, err, tc.want)
		case !tc.wantErr && err != nil:
			t.Errorf("%s (IPv%d): %v", tc.method, tc.family, err)
		case !tc.wantErr && r.Prefix.String() != tc.want:
			t.Errorf("%s (IPv%d): got %s, want %s", tc.method, tc.family, r.Prefix, tc.want)
		}
	}
}

func TestExcludedInterfaces(t *testing.T) {
	for _, name := range []string{"docker0", "cbr0", "dummy1", "podman0", "virbr0", "lxcbr0", "veth1234", "lo",
		"cali0123456789a", "tunl0", "flannel.1", "kube-ipvs0", "cni0", "vxlan.calico", "vxlan-v6.calico",
		"wireguard.cali", "wg-v6.cali", "br-0a1b2c", "nodelocaldns"} {
		if !excludedRegexp.MatchString(name) {
			t.Errorf("%s is not excluded", name)
		}
	}
	for _, name := range []string{"eth0", "ens5", "enp0s3", "bond0", "wlan0", "eno1"} {
		if excludedRegexp.MatchString(name) {
			t.Errorf("%s is excluded", name)
		}
	}
}

func TestLocalPrefix(t *testing.T) {
	sys := host("eth0 192.168.1.10/24", "eth1 10.0.0.5/16")
	r, ok, err := LocalPrefix(netip.MustParseAddr("10.0.0.5"), sys)
	if err != nil || !ok || r.Prefix.String() != "10.0.0.5/16" || r.Interface != "eth1" {
		t.Fatalf("LocalPrefix(10.0.0.5) = %+v, %v, %v", r, ok, err)
	}
	if _, ok, _ := LocalPrefix(netip.MustParseAddr("10.0.0.6"), sys); ok {
		t.Fatal("LocalPrefix found an address the host does not have")
	}
}
