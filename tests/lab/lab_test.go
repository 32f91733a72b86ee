package lab

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tabbynet/tabby/internal/testutil"
)

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// requireTool fails (TABBY_REQUIRE_PRIVILEGED=1) or skips when a routing
// daemon the test needs is not installed.
func requireTool(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath(path); err == nil {
		return
	}
	if os.Getenv(testutil.EnvRequirePrivileged) == "1" {
		t.Fatalf("%s is not installed and %s=1: run scripts/install-deps.sh", path, testutil.EnvRequirePrivileged)
	}
	t.Skipf("%s is not installed (run scripts/install-deps.sh)", path)
}

// requireNetNS: root and namespaces (skip, or fail with
// TABBY_REQUIRE_PRIVILEGED=1), and not -short (make unit).
func requireNetNS(t *testing.T) {
	t.Helper()
	testutil.RequirePrivileged(t)
	if testing.Short() {
		t.Skip("builds network namespaces: skipped in -short mode")
	}
}

// The rendered configurations are checked by the daemons' own parsers.
func TestBIRDConfigParses(t *testing.T) {
	requireTool(t, "bird")
	dir := t.TempDir()
	cfg := BIRDConfig{
		RouterID:       netip.MustParseAddr("10.99.0.100"),
		Kernel:         true,
		Static:         []netip.Prefix{netip.MustParsePrefix("10.244.250.0/26"), netip.MustParsePrefix("10.200.0.1/32")},
		StaticDisabled: true,
		Peers: []BIRDPeer{
			{Name: "Mesh_10_99_0_10", Local: netip.MustParseAddr("10.99.0.100"), LocalAS: 64512, Addr: netip.MustParseAddr("10.99.0.10"), AS: 64512, Export: "static"},
			{Name: "Node_10_99_0_11", Local: netip.MustParseAddr("10.99.0.100"), LocalAS: 64512, Addr: netip.MustParseAddr("10.99.0.11"), AS: 64512, RRClient: true, RRClusterID: "1.1.1.1", Export: "all", Password: "pw"},
			{Name: "Global_10_99_0_1", Local: netip.MustParseAddr("10.99.0.100"), LocalAS: 65010, Addr: netip.MustParseAddr("10.99.0.1"), AS: 65000, Export: "none", Disabled: true},
		},
	}
	conf, err := cfg.Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bird", "-p", "-c", path).CombinedOutput(); err != nil {
		t.Fatalf("bird rejects the rendered configuration: %v\n%s\n%s", err, out, conf)
	}
}

func TestFRRConfigParses(t *testing.T) {
	requireTool(t, filepath.Join(frrDaemonDir, "bgpd"))
	dir := t.TempDir()
	cfg := FRRConfig{
		Hostname: "tor", RouterID: ToRLoopback, AS: ToRAS, RRClusterID: "1.1.1.1",
		Networks: []netip.Prefix{netip.MustParsePrefix("10.250.0.0/24")},
		Neighbors: []FRRNeighbor{
			{Addr: netip.MustParseAddr("10.99.0.10"), AS: 65001, Password: "pw", ASOverride: true, DefaultOriginate: true},
			{Addr: netip.MustParseAddr("10.99.0.11"), AS: ToRAS, RRClient: true},
		},
	}
	conf, err := cfg.Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bgpd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// -C: check the configuration and exit.
	out, err := exec.Command(filepath.Join(frrDaemonDir, "bgpd"), "-C", "-f", path).CombinedOutput()
	lower := strings.ToLower(string(out))
	if err != nil || strings.Contains(lower, "no such command") || strings.Contains(lower, "unknown command") || strings.Contains(lower, "error") {
		t.Fatalf("bgpd rejects the rendered configuration: %v\n%s\n%s", err, out, conf)
	}
	// A neighbor with as-override gets an update group of its own (see
	// bgpdConf; TestToRAnyJoinOrder shows what happens without); the
	// route reflector client does not need one.
	if !strings.Contains(conf, "neighbor 10.99.0.10 solo\n") || strings.Contains(conf, "neighbor 10.99.0.11 solo") {
		t.Fatalf("as-override neighbors must be solo, and only they:\n%s", conf)
	}
}

func TestBIRDProtocolsParse(t *testing.T) {
	out := `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     18:32:56.943  
tor        BGP        ---        up     18:32:57.547  Established   
bad        BGP        ---        start  18:32:57.547  Active        Socket: Connection refused
old        BGP        ---        start  2026-11-20    Connect       
`
	m := parseBIRDProtocols(out)
	if !m["tor"].Established() || m["bad"].Established() {
		t.Fatalf("parsed %+v", m)
	}
	if got := m["bad"].Info; got != "Active Socket: Connection refused" {
		t.Fatalf("info of bad = %q", got)
	}
	if got := m["old"].Info; got != "Connect" {
		t.Fatalf("info of old = %q", got)
	}
}

func TestMatrixString(t *testing.T) {
	n1, n2 := &Node{Name: "node1"}, &Node{Name: "node2"}
	m := Matrix{
		Pods: []*Pod{{Name: "a", Node: n1, IP: netip.MustParseAddr("10.244.0.1")}, {Name: "b", Node: n2, IP: netip.MustParseAddr("10.244.0.65")}},
		OK:   [][]bool{{true, true}, {false, true}},
	}
	want := "" +
		"from \\ to               #1  #2\n" +
		"#1 node1/a 10.244.0.1    .  ok\n" +
		"#2 node2/b 10.244.0.65  --   .\n"
	if got := m.String(); got != want {
		t.Fatalf("matrix:\n%q\nwant\n%q", got, want)
	}
	if m.AllOK() || len(m.Failures()) != 1 {
		t.Fatalf("AllOK=%v failures=%v", m.AllOK(), m.Failures())
	}
}

func TestDiffRoutes(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	want := map[netip.Prefix]ExpectedRoute{
		p("10.244.0.0/26"):  {Dst: p("10.244.0.0/26"), Blackhole: true, Why: "own"},
		p("10.244.0.64/26"): {Dst: p("10.244.0.64/26"), Via: []netip.Addr{a("10.99.0.11")}, Why: "node2"},
		p("10.244.0.1/32"):  {Dst: p("10.244.0.1/32"), Dev: "cali1", Why: "pod"},
	}
	good := []KernelRoute{
		{Dst: p("10.244.0.0/26"), Blackhole: true, Protocol: 98},
		{Dst: p("10.244.0.64/26"), Via: []netip.Addr{a("10.99.0.11")}, Dev: "eth0", Protocol: 98},
		{Dst: p("10.244.0.1/32"), Dev: "cali1", Protocol: 98},
	}
	if err := diffRoutes("n", want, good); err != nil {
		t.Fatal(err)
	}
	bad := []KernelRoute{
		{Dst: p("10.244.0.0/26"), Via: []netip.Addr{a("10.99.0.12")}, Protocol: 98},
		{Dst: p("10.244.0.64/26"), Via: []netip.Addr{a("10.99.0.12")}, Protocol: 98},
		{Dst: p("192.0.2.0/24"), Via: []netip.Addr{a("10.99.0.12")}, Protocol: 98},
	}
	err := diffRoutes("n", want, bad)
	if err == nil {
		t.Fatal("no difference found")
	}
	for _, s := range []string{"want blackhole=true", "want via one of", "unexpected: 192.0.2.0/24", "missing: 10.244.0.1/32"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("difference %q not reported in:\n%v", s, err)
		}
	}
}

// TestFabricToRAndBIRD builds the parts that need no Tabby: the fabric with
// two racks, FRR on the ToR, and BIRD peers in both racks, eBGP with MD5,
// each originating a prefix with a host behind it. It checks what a lab
// promises: sessions come up, the ToR's default route reaches BIRD's
// kernel, traffic crosses racks through the ToR, and Close leaves no
// namespace, process or directory behind.
func TestFabricToRAndBIRD(t *testing.T) {
	requireNetNS(t)
	requireTool(t, "bird")
	requireTool(t, filepath.Join(frrDaemonDir, "bgpd"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := New(ctx, Options{Topology: TopologyToR, Nodes: 2, Racks: 2, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			l.Close()
		}
	})
	const password = "lab-md5"
	var peers []*Peer
	for r := range 2 {
		p, err := l.AddPeer(ctx, "bird"+string(rune('a'+r)), r)
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, p)
	}
	var neighbors []FRRNeighbor
	for r, p := range peers {
		neighbors = append(neighbors, FRRNeighbor{Addr: p.IP, AS: ToRRackAS(r), Password: password, DefaultOriginate: true})
	}
	if err := l.ToR.Start(ctx, FRRConfig{Neighbors: neighbors}); err != nil {
		t.Fatal(err)
	}
	stubs := []netip.Addr{netip.MustParseAddr("10.250.0.2"), netip.MustParseAddr("10.250.1.2")}
	var stubNS []*NetNS
	for r, p := range peers {
		err := p.StartBIRD(ctx, BIRDConfig{
			Kernel: true,
			Static: []netip.Prefix{netip.PrefixFrom(stubs[r], 32)},
			Peers: []BIRDPeer{{Name: "tor", Local: p.IP, LocalAS: ToRRackAS(r), Addr: ToRAddr(r), AS: ToRAS,
				Password: password, Export: "static"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		sn, err := p.AddStub(ctx, stubs[r])
		if err != nil {
			t.Fatal(err)
		}
		stubNS = append(stubNS, sn)
	}
	err = waitFor(ctx, time.Minute, func() error {
		st, err := l.ToR.FRR.Peers(ctx)
		if err != nil {
			return err
		}
		for _, p := range peers {
			if st[p.IP].State != "Established" || st[p.IP].PfxRcd != 1 {
				return &stateErr{p.IP.String() + " " + st[p.IP].State}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ToR sessions: %v\n%s", err, tail(filepath.Join(l.ToR.FRR.Dir, "bgpd.log"), 20))
	}
	// The ToR's default route reaches BIRD's kernel.
	err = waitFor(ctx, time.Minute, func() error {
		rs, err := peers[0].NS.Routes(int(birdProtocol))
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Dst.Bits() == 0 && len(r.Via) == 1 && r.Via[0] == ToRAddr(0) {
				return nil
			}
		}
		return &stateErr{"no default route via the ToR in " + peers[0].NS.Name}
	})
	if err != nil {
		t.Fatal(err)
	}
	// Across racks through the ToR, from stub to stub.
	if err := waitFor(ctx, 30*time.Second, func() error { return Ping(ctx, stubNS[0], stubs[1]) }); err != nil {
		t.Fatalf("rack 0 cannot reach the host behind rack 1's peer: %v", err)
	}

	prefix, dir := l.Prefix(), l.Dir()
	pids := []int{l.ToR.FRR.Zebra.PID(), l.ToR.FRR.Bgpd.PID(), peers[0].BIRD.Proc.PID(), peers[1].BIRD.Proc.PID()}
	closed = true
	if err := l.Close(); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			t.Errorf("namespace %s survived teardown", e.Name())
		}
	}
	for _, pid := range pids {
		if processAlive(pid) {
			t.Errorf("process %d survived teardown", pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("work directory %s survived teardown (%v)", dir, err)
	}
}

type stateErr struct{ s string }

func (e *stateErr) Error() string { return e.s }

// TestProcUsage reads this test binary's own use: it has run (CPU > 0)
// and holds memory.
func TestProcUsage(t *testing.T) {
	u, err := ProcUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.PeakRSS <= 0 || u.RSS <= 0 || u.RSS > u.PeakRSS || u.CPU <= 0 {
		t.Fatalf("usage of this test: %+v", u)
	}
}

// TestSweepStale: leftovers of a lab whose process is dead (a namespace,
// a work directory and a recorded process still running) are removed; a
// process that merely reuses a recorded PID is not touched, nor is
// anything of a live lab.
func TestSweepStale(t *testing.T) {
	requireNetNS(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("%s%d-1", NamePrefix, dead.Process.Pid)
	dir, err := os.MkdirTemp("", prefix+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// A daemon of the dead lab (its command line names the work dir) and
	// an unrelated process whose PID the list also holds.
	daemon := exec.Command("sh", "-c", "sleep 300; : "+dir)
	other := exec.Command("sleep", "300")
	for _, c := range []*exec.Cmd{daemon, other} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	}
	pids := fmt.Sprintf("%d\n%d\n", daemon.Process.Pid, other.Process.Pid)
	if err := os.WriteFile(filepath.Join(dir, "pids"), []byte(pids), 0o644); err != nil {
		t.Fatal(err)
	}
	nsName := prefix + "-node1"
	if err := createNamedNetNS(nsName); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", nsName).Run() })
	// A live lab's namespace: this process's.
	live, err := newEnv("", testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.close() })
	liveNS, err := live.newNetNS("node1")
	if err != nil {
		t.Fatal(err)
	}

	removed, err := SweepStale(testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("removed: %v", removed)
	if err := daemon.Wait(); err == nil {
		t.Error("the dead lab's daemon was not killed")
	}
	if !processAlive(other.Process.Pid) {
		t.Error("an unrelated process with a recorded PID was killed")
	}
	if _, err := os.Stat(filepath.Join(netnsDir, nsName)); !os.IsNotExist(err) {
		t.Errorf("the dead lab's namespace %s is still there (%v)", nsName, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the dead lab's work directory is still there (%v)", err)
	}
	if _, err := os.Stat(liveNS.Path()); err != nil {
		t.Errorf("the live lab's namespace was removed: %v", err)
	}
	if _, err := os.Stat(live.dir); err != nil {
		t.Errorf("the live lab's work directory was removed: %v", err)
	}
}
