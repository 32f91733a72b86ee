//go:build bench

// The CNI benchmark builds two labs and adds hundreds of pods, too much for
// every `go test`: it is compiled only with -tags bench (make bench), so a
// plain run neither runs nor skips it.

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/tabbynet/tabby/tests/e2e/cnilab"
)

// The package is shared with other benchmarks: the CNI benchmark's names
// all start with cni.
const (
	cniSerialPods       = 100
	cniConcurrentPods   = 30
	cniConcurrentRounds = 3
	cniWarmups          = 3
)

// cniChain is one plugin chain under test, on its own node namespace, with
// its own pod sandboxes.
type cniChain struct {
	name string
	rt   *cnilab.Runtime
	list *libcni.NetworkConfigList
	pods []*cnilab.Pod
}

// cniRow is one line of the table: one chain in one mode.
type cniRow struct {
	add, del []time.Duration
	walls    []time.Duration // ADD wall time: of the serial run, or of each concurrent round
}

// TestBenchCNIAddLatency measures CNI ADD (and DEL) latency through libcni,
// as containerd calls it, for Tabby (calico + calico-ipam against a running
// calico-node) and for the reference ptp + host-local plugins, both chained
// before portmap, in the same run: 100 pods one after another, then 30 at
// once (three rounds, pooled). The two chains take turns pod by pod (serial)
// and round by round (concurrent), so that both see the same load on a
// shared machine. It prints a table, and where Tabby's calico-node spent
// its part of the time (from its log), and asserts nothing about the
// numbers.
//
//	go test -tags bench -count 1 -timeout 20m -run TestBench -v ./tests/bench/
func TestBenchCNIAddLatency(t *testing.T) {
	t.Cleanup(cnilab.Cleanup) // the built binaries
	lab := cnilab.New(t)
	tabbyNode := lab.AddNode(cnilab.NodeOptions{})
	refNode := lab.AddNode(cnilab.NodeOptions{NoStart: true})

	chains := []*cniChain{
		{
			name: "tabby: calico + calico-ipam (+ portmap)",
			rt:   tabbyNode.Runtime(t),
			list: cnilab.ConfList(t, tabbyNode.CalicoConf(map[string]any{"log_level": "warning"})),
		},
		{
			name: "reference: ptp + host-local (+ portmap)",
			rt:   refNode.Runtime(t),
			list: cnilab.ConfList(t, map[string]any{
				"type": "ptp", "ipMasq": false, "mtu": 1500,
				"ipam": map[string]any{"type": "host-local", "subnet": "10.210.0.0/16",
					"dataDir": filepath.Join(t.TempDir(), "host-local")},
			}),
		},
	}
	for ci, c := range chains {
		c.pods = make([]*cnilab.Pod, cniSerialPods)
		for i := range c.pods {
			c.pods[i] = cnilab.NewPod(t, fmt.Sprintf("bench-%d-%03d", ci, i))
		}
	}

	for i := range cniWarmups { // page in the binaries, warm the agent
		for _, c := range chains {
			if _, err := c.rt.Add(c.list, c.pods[i]); err != nil {
				t.Fatalf("%s: warm-up ADD: %v", c.name, err)
			}
			if err := c.rt.Del(c.list, c.pods[i]); err != nil {
				t.Fatalf("%s: warm-up DEL: %v", c.name, err)
			}
		}
	}

	serial := make([]cniRow, len(chains))
	for _, op := range []string{"ADD", "DEL"} {
		for i := range cniSerialPods {
			for ci, c := range chains {
				d, err := cniTime(c, op, c.pods[i])
				if err != nil {
					t.Fatalf("%s: %s %s: %v", c.name, op, c.pods[i].Name, err)
				}
				if op == "ADD" {
					serial[ci].add = append(serial[ci].add, d)
				} else {
					serial[ci].del = append(serial[ci].del, d)
				}
			}
		}
	}
	for ci := range chains {
		var sum time.Duration
		for _, d := range serial[ci].add {
			sum += d
		}
		serial[ci].walls = []time.Duration{sum}
	}

	concurrent := make([]cniRow, len(chains))
	for range cniConcurrentRounds {
		for ci, c := range chains {
			pods := c.pods[:cniConcurrentPods]
			start := time.Now()
			concurrent[ci].add = append(concurrent[ci].add, cniTimeAll(t, c, "ADD", pods)...)
			concurrent[ci].walls = append(concurrent[ci].walls, time.Since(start))
			concurrent[ci].del = append(concurrent[ci].del, cniTimeAll(t, c, "DEL", pods)...)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\nCNI latency through libcni (%s, GOMAXPROCS cores: %d; chains interleaved; concurrent: %d rounds pooled, ADD wall is their median)\n",
		time.Now().Format(time.DateTime), runtime.GOMAXPROCS(0), cniConcurrentRounds)
	fmt.Fprintf(&b, "%-42s %-15s %9s %9s %9s %9s %10s\n", "chain", "mode", "ADD p50", "ADD p99", "DEL p50", "DEL p99", "ADD wall")
	for ci, c := range chains {
		for _, m := range []struct {
			name string
			row  cniRow
		}{{fmt.Sprintf("serial x%d", cniSerialPods), serial[ci]}, {fmt.Sprintf("concurrent x%d", cniConcurrentPods), concurrent[ci]}} {
			r := m.row
			fmt.Fprintf(&b, "%-42s %-15s %9s %9s %9s %9s %10s\n", c.name, m.name,
				cniMs(cniPct(r.add, 50)), cniMs(cniPct(r.add, 99)), cniMs(cniPct(r.del, 50)), cniMs(cniPct(r.del, 99)), cniMs(cniPct(r.walls, 50)))
		}
	}
	b.WriteString(cniAgentSteps(tabbyNode.LogPath))
	fmt.Print(b.String())
	t.Log(b.String())
	cniKeepLogs(t, tabbyNode)
}

// cniKeepLogsEnv names a directory to copy calico-node's and the plugins'
// logs of the Tabby chain into, for a closer look (set log_level info in
// the conf above for the plugin's per-step timings).
const cniKeepLogsEnv = "TABBY_BENCH_KEEP_LOGS"

func cniKeepLogs(t *testing.T, n *cnilab.Node) {
	dir := os.Getenv(cniKeepLogsEnv)
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("%s: %v", cniKeepLogsEnv, err)
		return
	}
	for _, f := range []string{n.LogPath, filepath.Join(n.Dir, "plugins.log")} {
		if b, err := os.ReadFile(f); err != nil {
			t.Logf("%s: %v", cniKeepLogsEnv, err)
		} else if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Logf("%s: %v", cniKeepLogsEnv, err)
		}
	}
}

// cniTime runs one ADD or DEL and returns its duration.
func cniTime(c *cniChain, op string, p *cnilab.Pod) (time.Duration, error) {
	start := time.Now()
	var err error
	if op == "ADD" {
		_, err = c.rt.Add(c.list, p)
	} else {
		err = c.rt.Del(c.list, p)
	}
	return time.Since(start), err
}

// cniTimeAll runs op on every pod at once and returns each call's
// duration; any failure ends the test.
func cniTimeAll(t *testing.T, c *cniChain, op string, pods []*cnilab.Pod) []time.Duration {
	t.Helper()
	d := make([]time.Duration, len(pods))
	errs := make([]error, len(pods))
	var wg sync.WaitGroup
	for i := range pods {
		wg.Go(func() { d[i], errs[i] = cniTime(c, op, pods[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %s %s: %v", c.name, op, pods[i].Name, err)
		}
	}
	return d
}

// cniAgentSteps summarizes where calico-node spent its part of the measured
// ADDs, from the timings its agent logs (at info level, as the lab runs
// it): AssignIPs, and AddWorkload with its endpoint write and host route,
// which run at the same time. The warm-ups are left out.
func cniAgentSteps(logPath string) string {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return fmt.Sprintf("calico-node step timings: %v\n", err)
	}
	var assign, add, write, route []float64
	for line := range strings.Lines(string(data)) {
		switch {
		case strings.Contains(line, `msg="assigned addresses"`):
			assign = append(assign, cniField(line, "ms"))
		case strings.Contains(line, `msg="workload added"`):
			add = append(add, cniField(line, "ms"))
			write = append(write, cniField(line, "write_ms"))
			route = append(route, cniField(line, "route_ms"))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\ncalico-node's share of Tabby's ADDs (agent log, ms)\n%-15s %-40s %7s %7s\n", "mode", "step", "p50", "p99")
	phases := []struct {
		name      string
		from, num int
	}{{"serial", cniWarmups, cniSerialPods}, {"concurrent", cniWarmups + cniSerialPods, cniConcurrentPods * cniConcurrentRounds}}
	for _, ph := range phases {
		for _, s := range []struct {
			name string
			v    []float64
		}{
			{"AssignIPs", assign},
			{"AddWorkload", add},
			{"  endpoint write (datastore)", write},
			{"  host route (Felix apply)", route},
		} {
			if len(s.v) < ph.from+ph.num {
				fmt.Fprintf(&b, "%-15s %-40s %7s %7s\n", ph.name, s.name, "n/a", "n/a")
				continue
			}
			v := slices.Sorted(slices.Values(s.v[ph.from : ph.from+ph.num]))
			fmt.Fprintf(&b, "%-15s %-40s %7.1f %7.1f\n", ph.name, s.name, v[cniRank(len(v), 50)], v[cniRank(len(v), 99)])
		}
	}
	return b.String()
}

var cniFieldRE = map[string]*regexp.Regexp{}

// cniField is the number logged as key=value in a log line (-1 if absent).
func cniField(line, key string) float64 {
	re, ok := cniFieldRE[key]
	if !ok {
		re = regexp.MustCompile(` ` + key + `=([0-9.]+)`)
		cniFieldRE[key] = re
	}
	m := re.FindStringSubmatch(line)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// cniPct is the p-th percentile (nearest rank).
func cniPct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[cniRank(len(s), p)]
}

func cniRank(n, p int) int { return max(0, min((p*n+99)/100-1, n-1)) }

func cniMs(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
