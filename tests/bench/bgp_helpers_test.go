package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tabbynet/tabby/internal/testutil"
	"github.com/tabbynet/tabby/tests/lab"
)

// The BGP benchmarks measure whole systems (daemons in namespaces), once
// per `go test -bench` run: they ignore b.N (run them with -benchtime 1x)
// and report their figures with b.ReportMetric and a table in the log,
// each Tabby figure next to its reference measured in the same run. They
// never pass or fail on a number.

// envRounds overrides how many times each measurement is repeated (the
// median is reported).
const envRounds = "TABBY_BENCH_ROUNDS"

func rounds() int {
	if n, err := strconv.Atoi(os.Getenv(envRounds)); err == nil && n > 0 {
		return n
	}
	return 3
}

// requireBGPTools fails (TABBY_REQUIRE_PRIVILEGED=1) or skips without root,
// BIRD or FRR.
func requireBGPTools(b *testing.B, tools ...string) {
	b.Helper()
	testutil.RequirePrivileged(b)
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			if os.Getenv(testutil.EnvRequirePrivileged) == "1" {
				b.Fatalf("%s is not installed and %s=1: run scripts/install-deps.sh", t, testutil.EnvRequirePrivileged)
			}
			b.Skipf("%s is not installed (run scripts/install-deps.sh)", t)
		}
	}
}

// benchBinaries builds calico-node and friends fresh for this benchmark
// (the build cache makes it a link step).
func benchBinaries(b *testing.B) string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := lab.Binaries(ctx, filepath.Join(b.TempDir(), "bin"))
	if err != nil {
		b.Fatal(err)
	}
	return dir
}

// newBenchLab builds a lab torn down at the end of the benchmark (and on
// Ctrl-C through lab.CloseOnSignal).
func newBenchLab(ctx context.Context, b *testing.B, opts lab.Options) *lab.Lab {
	b.Helper()
	stop := lab.CloseOnSignal(benchLog(b))
	b.Cleanup(stop)
	if opts.Log == nil {
		opts.Log = benchLog(b)
	}
	l, err := lab.New(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := l.Close(); err != nil {
			b.Errorf("teardown: %v", err)
		}
	})
	return l
}

func benchLog(b *testing.B) *slog.Logger {
	return slog.New(slog.NewTextHandler(benchWriter{b}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type benchWriter struct{ b *testing.B }

func (w benchWriter) Write(p []byte) (int, error) {
	w.b.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// hostPrefixes are n /32s counted up from first.
func hostPrefixes(first netip.Addr, n int) []netip.Prefix {
	out := make([]netip.Prefix, 0, n)
	a := first
	for range n {
		out = append(out, netip.PrefixFrom(a, 32))
		a = a.Next()
	}
	return out
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

func allSecs(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = secs(d)
	}
	return strings.Join(parts, " ")
}

func mib(bytes int64) string { return fmt.Sprintf("%.0f", float64(bytes)/(1<<20)) }

// birdVersion is the installed BIRD's version line, for the tables.
func birdVersion() string {
	out, err := exec.Command("bird", "--version").CombinedOutput()
	if err != nil {
		return "BIRD"
	}
	return strings.TrimSpace(string(out))
}
