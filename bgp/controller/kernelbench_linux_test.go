package controller_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/tabbynet/tabby/bgp"
	"github.com/tabbynet/tabby/bgp/gobgp"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
	"github.com/tabbynet/tabby/felix"
	"github.com/tabbynet/tabby/felix/dataplane"
	"github.com/tabbynet/tabby/internal/testutil"
)

// TestLearnToKernelThroughput measures the whole receive path in one
// process: an injector speaker announces N /32s to a receiving speaker
// (both on loopback), whose learned routes feed the real Felix, which
// programs a real kernel in a fresh network namespace. It reports the time
// from the session coming up until all N routes are in that kernel, and
// from the withdrawal until they are gone. Figures only (no pass/fail on
// time); runs when TABBY_BGP_BENCH is set (to N, or 1 for 100000). Run it
// with -cpuprofile to see where the time goes.
func TestLearnToKernelThroughput(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("TABBY_BGP_BENCH"))
	if n == 0 {
		t.Skip("set TABBY_BGP_BENCH=<prefixes> (1 means 100000) to measure")
	}
	if n == 1 {
		n = 100000
	}
	testutil.RequirePrivileged(t)
	node := testutil.NewNetNS(t, "tabby-bgp-bench")
	h := nsHandle(t, node)
	linkUp(t, h, "lo", "")
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "eth1"}); err != nil {
		t.Fatal(err)
	}
	linkUp(t, h, "eth0", "10.98.0.1/24")
	linkUp(t, h, "eth1", "")

	a, b := byte(100+rand.IntN(150)), byte(rand.IntN(256))
	rxAddr, injAddr := netip.AddrFrom4([4]byte{127, a, b, 1}), netip.AddrFrom4([4]byte{127, a, b, 2})
	ln, err := net.Listen("tcp", rxAddr.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	log := slog.New(slog.DiscardHandler)
	opts := gobgp.Options{Logger: log, ConnectRetry: time.Second, IdleHoldTime: time.Second}
	rx, inj := gobgp.New(opts), gobgp.New(opts)
	for _, s := range []struct {
		sp   *gobgp.Speaker
		addr netip.Addr
	}{{rx, rxAddr}, {inj, injAddr}} {
		if err := s.sp.Start(context.Background(), bgp.GlobalConfig{RouterID: s.addr, ASN: 64512, ListenPort: port, ListenAddresses: []netip.Addr{s.addr}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.sp.Stop(false) })
	}
	pools := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	rx.SetPolicy(bgp.Policy{Pools: pools})
	inj.SetPolicy(bgp.Policy{Pools: pools})
	ads := make([]bgp.Advertisement, n)
	for i := range ads {
		ads[i] = bgp.Advertisement{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200 + byte(i>>16), byte(i >> 8), byte(i)}), 32), NextHop: netip.MustParseAddr("10.98.0.2")}
	}
	birdInj := os.Getenv("TABBY_BGP_BENCH_BIRD") != ""
	if !birdInj {
		inj.SetAdvertisements(ads)
	}

	if os.Getenv("TABBY_BGP_BENCH_NOFELIX") != "" {
		bgpOnly(t, rx, inj, birdInj, rxAddr, injAddr, port, ads)
		return
	}
	// Felix on the namespace's kernel, with the receiver as its BGP side.
	ds := etcdtest.NewStore(t)
	f := felix.New(felix.Config{
		RemoteRoutes: rx,
		Dataplane:    dataplane.NewReconciler(h, dataplane.ProcSys{NetNS: node}, benchLog()),
		IPv6Support:  func() *bool { f := false; return &f }(),
	}, ds, "bench", log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// Count protocol-98 routes from the kernel's notifications: dumping a
	// 100k-route table to count it would cost more than programming it.
	nsh, err := netns.GetFromPath(node.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsh.Close() })
	updates, stopWatch := make(chan netlink.RouteUpdate, 4096), make(chan struct{})
	lost := false
	if err := netlink.RouteSubscribeWithOptions(updates, stopWatch, netlink.RouteSubscribeOptions{
		Namespace: &nsh, ReceiveBufferSize: 64 << 20, ErrorCallback: func(error) { lost = true },
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(stopWatch) })
	var inKernel atomic.Int64
	go func() {
		for u := range updates {
			if u.Protocol != dataplane.RouteProtocol || u.Gw == nil {
				continue
			}
			switch u.Type {
			case unix.RTM_NEWROUTE:
				inKernel.Add(1)
			case unix.RTM_DELROUTE:
				inKernel.Add(-1)
			}
		}
	}()
	count := func() int { return int(inKernel.Load()) }
	// Wait until the injector holds the whole table, so that what is
	// timed is the receive side.
	time.Sleep(3 * time.Second)
	peer := func(local, addr netip.Addr) []bgp.PeerConfig {
		return []bgp.PeerConfig{{Address: addr, Port: uint16(port), ASN: 64512, ClusterInternal: true,
			LocalAddress: local, Passive: addr.String() > local.String()}}
	}
	if birdInj {
		// BIRD as the injector, so that only the receiving side runs in
		// this process (and shows in its profile).
		inj.Stop(false)
		startBIRDInjector(t, injAddr, rxAddr, port, ads)
		rx.SetPeers([]bgp.PeerConfig{{Address: injAddr, Port: uint16(port) + 1, ASN: 65100, LocalAddress: rxAddr}})
	} else {
		rx.SetPeers(peer(rxAddr, injAddr))
		inj.SetPeers(peer(injAddr, rxAddr))
	}
	var up time.Time
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if up.IsZero() {
			if st, _ := rx.PeerStatus(ctx); len(st) == 1 && st[0].Established() {
				up = time.Now()
			}
		}
		if count() >= n {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if up.IsZero() || count() < n {
		t.Fatalf("session up at %v, %d of %d routes in the kernel", up, count(), n)
	}
	t.Logf("%d routes in the kernel %s after the session came up", count(), time.Since(up))

	t1 := time.Now()
	if birdInj {
		birdc(t, "disable", "inj")
	} else {
		inj.SetAdvertisements(nil)
	}
	for time.Now().Before(deadline) && count() > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("all gone %s after the withdrawal started (count %d)", time.Since(t1), count())
	if lost {
		t.Log("the route notification stream overflowed: the figures are late")
	}
}

// benchLog shows the dataplane's per-apply summaries when TABBY_BGP_BENCH_LOG is set.
func benchLog() *slog.Logger {
	if os.Getenv("TABBY_BGP_BENCH_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

var birdSocket string

// startBIRDInjector runs BIRD on the test's loopback (its own address and
// port, control socket and pid file in a temp dir) announcing ads to the
// receiver over eBGP. It is stopped by PID when the test ends.
func startBIRDInjector(t *testing.T, local, rx netip.Addr, rxPort int, ads []bgp.Advertisement) {
	t.Helper()
	if _, err := exec.LookPath("bird"); err != nil {
		t.Skip("bird is not installed")
	}
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "router id %s;\nprotocol device {}\nprotocol static inj {\n  ipv4;\n", local)
	for _, a := range ads {
		fmt.Fprintf(&b, "  route %s blackhole;\n", a.Prefix)
	}
	fmt.Fprintf(&b, "}\nprotocol bgp tabby {\n  local %s port %d as 65100;\n  neighbor %s port %d as 64512;\n  multihop;\n  ipv4 { import none; export where proto = \"inj\"; next hop address %s; };\n}\n",
		local, rxPort+1, rx, rxPort, ads[0].NextHop)
	conf := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	birdSocket = filepath.Join(dir, "bird.ctl")
	cmd := exec.Command("bird", "-f", "-c", conf, "-s", birdSocket, "-P", filepath.Join(dir, "bird.pid"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("bird:\n%s", out.String())
		}
	})
}

func birdc(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("birdc", append([]string{"-s", birdSocket}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("birdc %v: %v\n%s", args, err, out)
	}
}

// bgpOnly times the speaker alone: until every route is learned (as the
// consumer sees it), and until every withdrawal is.
func bgpOnly(t *testing.T, rx, inj *gobgp.Speaker, birdInj bool, rxAddr, injAddr netip.Addr, port int, ads []bgp.Advertisement) {
	if birdInj {
		inj.Stop(false)
		startBIRDInjector(t, injAddr, rxAddr, port, ads)
		rx.SetPeers([]bgp.PeerConfig{{Address: injAddr, Port: uint16(port) + 1, ASN: 65100, LocalAddress: rxAddr}})
	} else {
		time.Sleep(3 * time.Second)
		rx.SetPeers([]bgp.PeerConfig{{Address: injAddr, Port: uint16(port), ASN: 64512, LocalAddress: rxAddr, Passive: injAddr.String() > rxAddr.String()}})
		inj.SetPeers([]bgp.PeerConfig{{Address: rxAddr, Port: uint16(port), ASN: 64512, LocalAddress: injAddr, Passive: rxAddr.String() > injAddr.String()}})
	}
	var up time.Time
	total := 0
	deadline := time.Now().Add(2 * time.Minute)
	for total < len(ads) && time.Now().Before(deadline) {
		if up.IsZero() {
			if st, _ := rx.PeerStatus(context.Background()); len(st) == 1 && st[0].Established() {
				up = time.Now()
			}
		}
		select {
		case <-rx.RouteChanges():
			c, _ := rx.TakeRouteChanges()
			total += len(c)
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.Logf("speaker only: %d routes learned %s after the session came up", total, time.Since(up))
	t1 := time.Now()
	if birdInj {
		birdc(t, "disable", "inj")
	} else {
		inj.SetAdvertisements(nil)
	}
	gone := 0
	for gone < len(ads) && time.Now().Before(deadline) {
		<-rx.RouteChanges()
		_, w := rx.TakeRouteChanges()
		gone += len(w)
	}
	t.Logf("speaker only: %d withdrawn %s after the withdrawal started", gone, time.Since(t1))
}
