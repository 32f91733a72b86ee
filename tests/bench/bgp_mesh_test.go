package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tabbynet/tabby/ipam"
	"github.com/tabbynet/tabby/tests/lab"
)

// meshPoll is how often sessions are polled while a mesh converges: the
// figures' resolution. Routes are followed by notification, not polled.
const meshPoll = 250 * time.Millisecond

// meshLimit bounds one convergence; it is a hang guard, not a target.
const meshLimit = 10 * time.Minute

type meshResult struct {
	established, routes time.Duration
	cpu                 time.Duration
	peakRSS             int64 // summed over the daemons
}

// BenchmarkBGPFullMesh: N nodes in a full iBGP mesh, each in its own
// namespace with one block of its own; from a cold start of every daemon,
// the time until every session is Established and until every node's
// kernel holds every other node's block, and the CPU seconds all daemons
// used to get there. Tabby's calico-node (with its datastore, Felix and
// agent: the whole node) next to BIRD in the same topology (one static
// block per BIRD, learned routes exported to its kernel), same run.
//
//	go test -run '^$' -bench BGPFullMesh -benchtime 1x ./tests/bench/
func BenchmarkBGPFullMesh(b *testing.B) {
	requireBGPTools(b, "bird", "birdc")
	bin := benchBinaries(b)
	for _, n := range []int{20, 50} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*meshLimit)
			defer cancel()
			bird, err := birdMesh(ctx, b, n)
			if err != nil {
				b.Fatalf("BIRD mesh of %d: %v", n, err)
			}
			tabby, err := tabbyMesh(ctx, b, bin, n)
			if err != nil {
				b.Fatalf("Tabby mesh of %d: %v", n, err)
			}
			var t strings.Builder
			fmt.Fprintf(&t, "full mesh of %d nodes (namespaces on one bridge), cold start of every daemon (poll resolution %s)\n", n, meshPoll)
			fmt.Fprintf(&t, "%-32s %18s %22s %14s %18s\n", "", "all Established (s)", "all blocks in kernels (s)", "CPU total (s)", "peak RSS sum (MiB)")
			for _, r := range []struct {
				name string
				res  meshResult
			}{{birdVersion(), bird}, {"Tabby calico-node", tabby}} {
				fmt.Fprintf(&t, "%-32s %18s %22s %14s %18s\n", r.name, secs(r.res.established), secs(r.res.routes), secs(r.res.cpu), mib(r.res.peakRSS))
			}
			b.Log("\n" + t.String())
			b.ReportMetric(tabby.routes.Seconds(), "tabby-converged-s")
			b.ReportMetric(tabby.established.Seconds(), "tabby-established-s")
			b.ReportMetric(tabby.cpu.Seconds(), "tabby-cpu-s")
			b.ReportMetric(bird.routes.Seconds(), "bird-converged-s")
			b.ReportMetric(bird.established.Seconds(), "bird-established-s")
			b.ReportMetric(bird.cpu.Seconds(), "bird-cpu-s")
		})
	}
}

// meshBlock is the /26 of the i-th node (0-based) in the BIRD mesh.
func meshBlock(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i / 4), byte(i%4) * 64}), 26)
}

func birdMesh(ctx context.Context, b *testing.B, n int) (meshResult, error) {
	var res meshResult
	l := newBenchLab(ctx, b, lab.Options{NoToR: true})
	peers := make([]*lab.Peer, n)
	for i := range n {
		p, err := l.AddPeer(ctx, fmt.Sprintf("bird%d", i+1), 0)
		if err != nil {
			return res, err
		}
		peers[i] = p
	}
	watches := make([]*lab.RouteWatch, n)
	for i, p := range peers {
		w, err := p.NS.WatchRoutes(unix.RTPROT_BIRD, false)
		if err != nil {
			return res, err
		}
		defer w.Close()
		watches[i] = w
	}
	// Every BIRD starts at once, as every calico-node does below.
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, p := range peers {
		cfg := lab.BIRDConfig{Kernel: true, Static: []netip.Prefix{meshBlock(i)}}
		for j, q := range peers {
			if j == i {
				continue
			}
			cfg.Peers = append(cfg.Peers, lab.BIRDPeer{
				Name: "Mesh_" + strings.ReplaceAll(q.IP.String(), ".", "_"), Local: p.IP, LocalAS: lab.DefaultASNumber,
				Addr: q.IP, AS: lab.DefaultASNumber, Export: "static",
			})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.StartBIRD(ctx, cfg)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	established := func(i int) (bool, error) {
		ps, err := peers[i].BIRD.Protocols(ctx)
		if err != nil {
			return false, err
		}
		up := 0
		for _, p := range ps {
			if p.Proto == "BGP" && p.Established() {
				up++
			}
		}
		return up == n-1, nil
	}
	procs := make([]*lab.Proc, n)
	for i, p := range peers {
		procs[i] = p.BIRD.Proc
	}
	return converge(ctx, t0, n, established, watches, func(c int) bool { return c == n-1 }, procs)
}

func tabbyMesh(ctx context.Context, b *testing.B, bin string, n int) (meshResult, error) {
	var res meshResult
	l := newBenchLab(ctx, b, lab.Options{NoToR: true, BinDir: bin, AgentLogLevel: "warning"})
	nodes := make([]*lab.Node, n)
	for i := range n {
		node, err := l.AddNode(ctx, lab.NodeSpec{})
		if err != nil {
			return res, err
		}
		nodes[i] = node
	}
	// The pool and one block per node exist before any agent starts, as
	// in a cluster whose pods already run: the measurement is BGP, not
	// IPAM.
	pool := "---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: default-ipv4-ippool\nspec:\n  cidr: " + lab.DefaultPoolCIDR +
		"\n  blockSize: 26\n  ipipMode: Never\n  vxlanMode: Never\n  natOutgoing: true\n  nodeSelector: all()\n"
	if err := l.Apply(ctx, l.TopologyYAML()+pool); err != nil {
		return res, err
	}
	im := ipam.New(l.Datastore.Store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, node := range nodes {
		if _, _, err := im.AutoAssign(ctx, ipam.AssignArgs{Num4: 1, HandleID: "bench." + node.Name, Node: node.Name}); err != nil {
			return res, fmt.Errorf("claim a block for %s: %w", node.Name, err)
		}
	}
	watches := make([]*lab.RouteWatch, n)
	for i, node := range nodes {
		w, err := node.NS.WatchRoutes(lab.RouteProtocol, false)
		if err != nil {
			return res, err
		}
		defer w.Close()
		watches[i] = w
	}
	t0 := time.Now()
	if err := l.StartNodes(ctx, nodes...); err != nil {
		return res, err
	}
	established := func(i int) (bool, error) {
		ps, err := nodes[i].PeerStates(ctx)
		if err != nil {
			return false, nil // starting: its socket may not answer yet
		}
		up := 0
		for _, p := range ps {
			if p.GetState() == "Established" {
				up++
			}
		}
		return up == n-1, nil
	}
	procs := make([]*lab.Proc, n)
	for i, node := range nodes {
		procs[i] = node.Proc()
	}
	// Own block (blackhole) plus every other node's.
	return converge(ctx, t0, n, established, watches, func(c int) bool { return c == n }, procs)
}

// converge waits until every node i is established(i) and its watch count
// satisfies full, recording the moment the last node got there for each,
// then sums the daemons' CPU and peak RSS.
func converge(ctx context.Context, t0 time.Time, n int, established func(int) (bool, error),
	watches []*lab.RouteWatch, full func(int) bool, procs []*lab.Proc) (meshResult, error) {
	var res meshResult
	ctx, cancel := context.WithTimeout(ctx, meshLimit)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		lastEst time.Time
		lastRt  time.Time
		errs    []error
	)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			at, c, err := watches[i].WaitCount(ctx, full)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("node %d: routes: %d: %w", i+1, c, err))
				return
			}
			if at.After(lastRt) {
				lastRt = at
			}
		}()
		go func() {
			defer wg.Done()
			for {
				ok, err := established(i)
				if err == nil && ok {
					mu.Lock()
					if now := time.Now(); now.After(lastEst) {
						lastEst = now
					}
					mu.Unlock()
					return
				}
				select {
				case <-ctx.Done():
					mu.Lock()
					errs = append(errs, fmt.Errorf("node %d: sessions not all established: %v", i+1, errors.Join(err, ctx.Err())))
					mu.Unlock()
					return
				case <-time.After(meshPoll):
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return res, errors.Join(errs...)
	}
	res.established, res.routes = lastEst.Sub(t0), lastRt.Sub(t0)
	for _, p := range procs {
		u, err := p.Usage()
		if err != nil {
			return res, err
		}
		res.cpu += u.CPU
		res.peakRSS += u.PeakRSS
	}
	return res, nil
}
