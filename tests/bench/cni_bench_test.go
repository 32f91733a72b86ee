package bench

import (
	"flag"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
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
	cniSerialPods     = 100
	cniConcurrentPods = 30
	cniWarmups        = 3
)

// cniSelected reports whether -run names this benchmark explicitly: it builds
// two labs and adds hundreds of pods, too much for every `go test ./...`.
func cniSelected() bool {
	f := flag.Lookup("test.run")
	return f != nil && strings.Contains(f.Value.String(), "TestBench")
}

// cniChain is one plugin chain under test, on its own node namespace.
type cniChain struct {
	name string
	rt   *cnilab.Runtime
	list *libcni.NetworkConfigList
}

// TestBenchCNIAddLatency measures CNI ADD (and DEL) latency through libcni,
// as containerd calls it, for Tabby (calico + calico-ipam against a running
// calico-node) and for the reference ptp + host-local plugins, both chained
// before portmap, in the same run: 100 pods one after another, then 30 at
// once. It prints a table and asserts nothing about the numbers.
//
//	go test -count 1 -timeout 20m -run TestBench -v ./tests/bench/
func TestBenchCNIAddLatency(t *testing.T) {
	if !cniSelected() {
		t.Skip("benchmark: run it with -run TestBench (make bench)")
	}
	t.Cleanup(cnilab.Cleanup) // the built binaries
	lab := cnilab.New(t)
	tabbyNode := lab.AddNode(cnilab.NodeOptions{})
	refNode := lab.AddNode(cnilab.NodeOptions{NoStart: true})

	chains := []cniChain{
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

	// One sandbox per pod, reused by both chains (each DEL leaves it empty).
	pods := make([]*cnilab.Pod, cniSerialPods)
	for i := range pods {
		pods[i] = cnilab.NewPod(t, fmt.Sprintf("bench-%03d", i))
	}

	type row struct {
		chain, mode string
		add, del    []time.Duration
		wall        time.Duration
	}
	var rows []row
	for _, c := range chains {
		for i := range cniWarmups { // page in the binaries, warm the agent
			if _, err := c.rt.Add(c.list, pods[i]); err != nil {
				t.Fatalf("%s: warm-up ADD: %v", c.name, err)
			}
			if err := c.rt.Del(c.list, pods[i]); err != nil {
				t.Fatalf("%s: warm-up DEL: %v", c.name, err)
			}
		}
		for _, mode := range []struct {
			name string
			n    int
			par  bool
		}{{"serial", cniSerialPods, false}, {"concurrent", cniConcurrentPods, true}} {
			r := row{chain: c.name, mode: fmt.Sprintf("%s x%d", mode.name, mode.n)}
			start := time.Now()
			r.add = cniTimeAll(t, pods[:mode.n], mode.par, func(p *cnilab.Pod) error {
				_, err := c.rt.Add(c.list, p)
				return err
			})
			r.wall = time.Since(start)
			r.del = cniTimeAll(t, pods[:mode.n], mode.par, func(p *cnilab.Pod) error { return c.rt.Del(c.list, p) })
			rows = append(rows, r)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\nCNI latency through libcni (%s, GOMAXPROCS cores: %d)\n", time.Now().Format(time.DateTime), runtime.GOMAXPROCS(0))
	fmt.Fprintf(&b, "%-42s %-15s %9s %9s %9s %9s %10s\n", "chain", "mode", "ADD p50", "ADD p99", "DEL p50", "DEL p99", "ADD wall")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-42s %-15s %9s %9s %9s %9s %10s\n", r.chain, r.mode,
			cniMs(cniPct(r.add, 50)), cniMs(cniPct(r.add, 99)), cniMs(cniPct(r.del, 50)), cniMs(cniPct(r.del, 99)), cniMs(r.wall))
	}
	fmt.Print(b.String())
	t.Log(b.String())
}

// cniTimeAll runs op on every pod, one after another or all at once, and
// returns each call's duration; any failure ends the test.
func cniTimeAll(t *testing.T, pods []*cnilab.Pod, parallel bool, op func(*cnilab.Pod) error) []time.Duration {
	t.Helper()
	d := make([]time.Duration, len(pods))
	errs := make([]error, len(pods))
	one := func(i int) {
		start := time.Now()
		errs[i] = op(pods[i])
		d[i] = time.Since(start)
	}
	if parallel {
		var wg sync.WaitGroup
		for i := range pods {
			wg.Add(1)
			go func() { defer wg.Done(); one(i) }()
		}
		wg.Wait()
	} else {
		for i := range pods {
			one(i)
		}
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", pods[i].Name, err)
		}
	}
	return d
}

// cniPct is the p-th percentile (nearest rank).
func cniPct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	i := (p*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}

func cniMs(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
