package interop

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tabbynet/tabby/internal/testutil"
	"github.com/tabbynet/tabby/tests/lab"
)

// binDir holds calico-node, calicoctl, calico and calico-ipam, built once
// for the whole test binary in TestMain.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Only a run that can build labs pays for the build; the tests skip
	// (or fail, with TABBY_REQUIRE_PRIVILEGED=1) without root.
	if os.Geteuid() == 0 && !testing.Short() {
		dir, err := os.MkdirTemp("", "tabby-interop-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		binDir, err = lab.Binaries(ctx, dir)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		stop := lab.CloseOnSignal(log)
		defer stop()
		// What an earlier run killed with SIGKILL left (only labs of dead
		// processes are touched).
		if _, err := lab.SweepStale(log); err != nil {
			log.Warn("could not remove every leftover of earlier labs", "err", err)
		}
	}
	code := m.Run()
	if err := lab.CloseAll(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return code
}

// requireLab skips or fails (TABBY_REQUIRE_PRIVILEGED=1) when labs cannot
// be built here: no root, -short, or BIRD or FRR missing.
func requireLab(t *testing.T) {
	t.Helper()
	testutil.RequirePrivileged(t)
	if testing.Short() {
		t.Skip("multi-node lab: skipped in -short mode")
	}
	for _, tool := range []string{"bird", "birdc", "vtysh", "/usr/lib/frr/bgpd", "/usr/lib/frr/zebra", "ping"} {
		if _, err := os.Stat(tool); err == nil {
			continue
		}
		if _, err := exec.LookPath(tool); err == nil {
			continue
		}
		if os.Getenv(testutil.EnvRequirePrivileged) == "1" {
			t.Fatalf("%s is not installed and %s=1: run scripts/install-deps.sh", tool, testutil.EnvRequirePrivileged)
		}
		t.Skipf("%s is not installed (run scripts/install-deps.sh)", tool)
	}
	if binDir == "" {
		t.Fatal("the binaries were not built (TestMain)")
	}
}

// up builds a lab with opts (BinDir and Log filled in) and tears it down
// when the test ends; on failure it first prints the tail of every
// calico-node log.
func up(t *testing.T, opts lab.Options) *lab.Lab {
	t.Helper()
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	opts.BinDir = binDir
	if opts.Log == nil {
		opts.Log = testLog(t)
	}
	l, err := lab.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, l)
		}
		if err := l.Close(); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	if err := l.Deploy(ctx); err != nil {
		t.Fatal(err)
	}
	return l
}

func dumpLogs(t *testing.T, l *lab.Lab) {
	for _, n := range l.Nodes {
		if p := n.Proc(); p != nil {
			t.Logf("--- calico-node %s (last lines):\n%s", n.Name, p.LogTail(25))
		}
	}
	for _, p := range l.Peers {
		if p.BIRD != nil {
			t.Logf("--- bird %s:\n%s", p.Name, tailFile(filepath.Join(p.BIRD.Dir, "bird.log"), 15))
		}
		if p.FRR != nil {
			t.Logf("--- frr %s:\n%s", p.Name, tailFile(filepath.Join(p.FRR.Dir, "bgpd.log"), 15))
		}
	}
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// requireAllReach fails the test unless every pod reaches every other.
func requireAllReach(t *testing.T, ctx context.Context, l *lab.Lab) {
	t.Helper()
	m, err := l.Connectivity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !m.AllOK() {
		t.Fatalf("pods cannot reach each other:\n%s\nunreachable:\n  %s", m, strings.Join(m.Failures(), "\n  "))
	}
	t.Logf("pod-to-pod matrix:\n%s", m)
}

// requireRoutes fails unless every node's kernel holds exactly the
// expected proto-98 routes.
func requireRoutes(t *testing.T, ctx context.Context, l *lab.Lab, nodes ...*lab.Node) {
	t.Helper()
	if len(nodes) == 0 {
		nodes = l.Nodes
	}
	for _, n := range nodes {
		if err := l.CheckRoutes(ctx, n); err != nil {
			t.Error(err)
		}
	}
}
