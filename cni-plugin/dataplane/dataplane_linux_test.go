package dataplane

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"

	"github.com/tabbynet/tabby/internal/testutil"
)

// fixture is a "host" netns (standing in for the node) and a pod netns.
type fixture struct {
	host, pod ns.NetNS
	spec      Spec
}

func newFixture(t *testing.T, addrs ...string) *fixture {
	t.Helper()
	testutil.RequirePrivileged(t)
	f := &fixture{host: testutil.NewNetNS(t, "tabby-dp-host"), pod: testutil.NewNetNS(t, "tabby-dp-pod")}
	f.spec = Spec{HostIfName: "calitest0000001", PodIfName: "eth0", PodNetNS: f.pod.Path(), MTU: 1400}
	for _, a := range addrs {
		_, n, err := net.ParseCIDR(a)
		if err != nil {
			t.Fatal(err)
		}
		f.spec.Addrs = append(f.spec.Addrs, *n)
	}
	return f
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (f *fixture) setup(t *testing.T) Interfaces {
	t.Helper()
	var ifs Interfaces
	err := f.host.Do(func(ns.NetNS) error {
		var err error
		ifs, err = Setup(quietLog(), f.host, f.spec)
		return err
	})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return ifs
}

// addHostRoutes does what the agent does on AddWorkload.
func (f *fixture) addHostRoutes(t *testing.T) {
	t.Helper()
	err := f.host.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(f.spec.HostIfName)
		if err != nil {
			return err
		}
		for _, a := range f.spec.Addrs {
			hp := HostPrefix(a.IP)
			if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: &hp, Scope: netlink.SCOPE_LINK}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("add host routes: %v", err)
	}
}

func (f *fixture) check(ifs Interfaces) error {
	var err error
	_ = f.host.Do(func(ns.NetNS) error {
		err = Check(f.host, Expect{Spec: f.spec, PodMAC: ifs.PodMAC})
		return nil
	})
	return err
}

func run(t *testing.T, netns ns.NetNS, args ...string) string {
	t.Helper()
	full := append([]string{"netns", "exec", filepath.Base(netns.Path())}, args...)
	out, err := exec.Command("ip", full...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	return string(out)
}

func TestSetupBuildsCalicoShapedVeth(t *testing.T) {
	f := newFixture(t, "10.65.0.7/32", "fd00:65::7/128")
	ifs := f.setup(t)

	if !bytes.Equal(ifs.HostMAC, HostMAC) || ifs.MTU != 1400 || ifs.PodIndex == 0 || ifs.HostIndex == 0 {
		t.Errorf("Setup returned %+v", ifs)
	}
	hostLink := run(t, f.host, "ip", "-d", "link", "show", f.spec.HostIfName)
	for _, want := range []string{"ee:ee:ee:ee:ee:ee", "mtu 1400", "veth", "state UP"} {
		if !strings.Contains(hostLink, want) {
			t.Errorf("host veth lacks %q:\n%s", want, hostLink)
		}
	}
	podAddrs := run(t, f.pod, "ip", "addr", "show", "eth0")
	for _, want := range []string{"inet 10.65.0.7/32", "inet6 fd00:65::7/128", "mtu 1400", "state UP"} {
		if !strings.Contains(podAddrs, want) {
			t.Errorf("pod eth0 lacks %q:\n%s", want, podAddrs)
		}
	}
	routes4 := run(t, f.pod, "ip", "-4", "route", "show")
	for _, want := range []string{"default via 169.254.1.1 dev eth0", "169.254.1.1 dev eth0 scope link"} {
		if !strings.Contains(routes4, want) {
			t.Errorf("pod IPv4 routes lack %q:\n%s", want, routes4)
		}
	}
	routes6 := run(t, f.pod, "ip", "-6", "route", "show")
	if !strings.Contains(routes6, "default via fe80::ecee:eeff:feee:eeee dev eth0") {
		t.Errorf("pod IPv6 routes lack the link-local default:\n%s", routes6)
	}
	_ = f.host.Do(func(ns.NetNS) error {
		for _, kv := range append(append([]sysctlKV{}, hostSysctlsV4...), hostSysctlsV6...) {
			name := strings.ReplaceAll(kv.key, "%s", f.spec.HostIfName)
			got, err := sysctl.Sysctl(name)
			if err != nil || strings.TrimSpace(got) != kv.value {
				t.Errorf("sysctl %s = %q (%v), want %s", name, got, err, kv.value)
			}
		}
		return nil
	})
}

func TestCheckFindsEveryDrift(t *testing.T) {
	f := newFixture(t, "10.65.0.8/32")
	ifs := f.setup(t)

	err := f.check(ifs)
	if err == nil || !strings.Contains(err.Error(), "host route 10.65.0.8/32 dev calitest0000001 is missing") {
		t.Fatalf("Check before the agent's route: %v, want the missing host route reported", err)
	}
	f.addHostRoutes(t)
	if err := f.check(ifs); err != nil {
		t.Fatalf("Check of a fresh pod: %v", err)
	}

	drifts := []struct {
		name   string
		mutate func()
		want   string
	}{
		{"pod default route deleted", func() { run(t, f.pod, "ip", "route", "del", "default") },
			"pod route default via 169.254.1.1 dev eth0 is missing"},
		{"pod address deleted", func() { run(t, f.pod, "ip", "addr", "del", "10.65.0.8/32", "dev", "eth0") },
			"pod interface eth0 lacks address 10.65.0.8/32"},
		{"proxy_arp off", func() {
			run(t, f.host, "sh", "-c", "echo 0 > /proc/sys/net/ipv4/conf/calitest0000001/proxy_arp")
		}, "sysctl net/ipv4/conf/calitest0000001/proxy_arp is 0, want 1"},
		{"host route deleted", func() { run(t, f.host, "ip", "route", "del", "10.65.0.8/32") },
			"host route 10.65.0.8/32 dev calitest0000001 is missing"},
		{"host veth down", func() { run(t, f.host, "ip", "link", "set", "calitest0000001", "down") },
			"host veth calitest0000001 is down"},
	}
	for _, d := range drifts {
		d.mutate()
		err := f.check(ifs)
		if err == nil || !strings.Contains(err.Error(), d.want) {
			t.Errorf("after %s: Check = %v, want it to contain %q", d.name, err, d.want)
		}
	}
	// The pod side's MAC is compared with the previous result.
	other := ifs
	other.PodMAC = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	if err := f.check(other); err == nil || !strings.Contains(err.Error(), "the previous result says 02:00:00:00:00:01") {
		t.Errorf("Check with another MAC: %v", err)
	}
}

func TestCheckMissingPodInterface(t *testing.T) {
	f := newFixture(t, "10.65.0.9/32")
	if err := f.check(Interfaces{}); err == nil ||
		!strings.Contains(err.Error(), "pod interface eth0 is missing") || !strings.Contains(err.Error(), "host veth calitest0000001 is missing") {
		t.Errorf("Check with nothing built: %v", err)
	}
}

func TestPodReachesHostThroughProxyARP(t *testing.T) {
	f := newFixture(t, "10.65.0.10/32")
	f.setup(t)
	f.addHostRoutes(t)
	// The node's own address, and a route covering 169.254.1.1 (proxy ARP
	// answers only for destinations the node can route elsewhere).
	run(t, f.host, "ip", "link", "set", "lo", "up")
	run(t, f.host, "ip", "addr", "add", "10.66.0.1/32", "dev", "lo")
	run(t, f.host, "ip", "route", "add", "default", "dev", "lo")
	run(t, f.pod, "ping", "-c", "1", "-W", "2", "10.66.0.1")
	neigh := run(t, f.pod, "ip", "neigh", "show", "169.254.1.1")
	if !strings.Contains(neigh, "ee:ee:ee:ee:ee:ee") {
		t.Errorf("169.254.1.1 did not resolve to the host veth's MAC: %q", neigh)
	}
}

func TestSetupReplacesStaleHostVethAndRefusesExistingPodIface(t *testing.T) {
	f := newFixture(t, "10.65.0.11/32")
	// A leftover host veth of an earlier sandbox of the same pod.
	run(t, f.host, "ip", "link", "add", f.spec.HostIfName, "type", "veth", "peer", "name", "stale-peer")
	f.setup(t)
	if out := run(t, f.host, "ip", "link", "show"); strings.Contains(out, "stale-peer") {
		t.Errorf("stale veth survived:\n%s", out)
	}
	// An ADD of another workload into the same netns and ifname is refused
	// and leaves the first pod's interface alone.
	second := f.spec
	second.HostIfName = "calitest0000002"
	err := f.host.Do(func(ns.NetNS) error {
		_, err := Setup(quietLog(), f.host, second)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "interface eth0 already exists") {
		t.Fatalf("second Setup: %v", err)
	}
	if out := run(t, f.pod, "ip", "addr", "show", "eth0"); !strings.Contains(out, "10.65.0.11/32") {
		t.Errorf("the first pod's eth0 was damaged:\n%s", out)
	}
	if out := run(t, f.host, "ip", "-o", "link", "show"); strings.Contains(out, "calitest0000002") || !strings.Contains(out, f.spec.HostIfName) {
		t.Errorf("host links after the refused Setup:\n%s", out)
	}
}

func TestSetupFailureLeavesNoLink(t *testing.T) {
	f := newFixture(t, "10.65.0.12/32")
	f.spec.MTU = 70000 // more than a veth accepts
	err := f.host.Do(func(ns.NetNS) error {
		_, err := Setup(quietLog(), f.host, f.spec)
		return err
	})
	if err == nil {
		t.Fatal("Setup with MTU 70000 succeeded")
	}
	if out := run(t, f.host, "ip", "-o", "link", "show"); strings.Contains(out, "cali") {
		t.Errorf("a failed Setup left a host link:\n%s", out)
	}
	if out := run(t, f.pod, "ip", "-o", "link", "show"); strings.Contains(out, "eth0") {
		t.Errorf("a failed Setup left a pod link:\n%s", out)
	}
}

func TestTeardownIsIdempotent(t *testing.T) {
	f := newFixture(t, "10.65.0.13/32")
	f.setup(t)
	found, err := Teardown(f.spec.PodNetNS, "eth0")
	if err != nil || !found {
		t.Fatalf("first Teardown: found %t err %v", found, err)
	}
	if out := run(t, f.host, "ip", "-o", "link", "show"); strings.Contains(out, f.spec.HostIfName) {
		t.Errorf("host veth survived the pod side's deletion:\n%s", out)
	}
	found, err = Teardown(f.spec.PodNetNS, "eth0")
	if err != nil || found {
		t.Errorf("Teardown of a gone link: found %t err %v", found, err)
	}
	gone := filepath.Join(t.TempDir(), "no-such-netns")
	if found, err := Teardown(gone, "eth0"); err != nil || found {
		t.Errorf("Teardown in a gone netns: found %t err %v", found, err)
	}
	plain := filepath.Join(t.TempDir(), "plain-file")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if found, err := Teardown(plain, "eth0"); err != nil || found {
		t.Errorf("Teardown in an unmounted netns file: found %t err %v", found, err)
	}
	if found, err := Teardown("", "eth0"); err != nil || found {
		t.Errorf("Teardown without a netns: found %t err %v", found, err)
	}
}
