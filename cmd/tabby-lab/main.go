// Command tabby-lab is Tabby's demo (`make demo`): it builds a multi-node
// lab on this machine with tests/lab — network namespaces on a fabric, an
// FRR top-of-rack router, an embedded etcd, one calico-node per node and
// pods added through the calico CNI plugin — prints the pod-to-pod
// connectivity matrix and each node's `calicoctl node status`, and tears
// everything down, also after Ctrl-C or a failure. Everything but flag
// parsing and printing lives in tests/lab.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tabbynet/tabby/tests/lab"
)

func main() { os.Exit(run()) }

func run() int {
	var (
		opts     lab.Options
		topology string
		hold     bool
		sweep    bool
		verbose  bool
	)
	flag.IntVar(&opts.Nodes, "nodes", lab.DefaultNodes, "number of nodes")
	flag.IntVar(&opts.PodsPerNode, "pods", lab.DefaultPodsPerNode, "pods per node")
	flag.StringVar(&topology, "topology", string(lab.TopologyMesh), "mesh (node-to-node mesh), rr (route reflectors, mesh off) or tor (eBGP to an FRR top-of-rack router, AS per rack, mesh off)")
	flag.IntVar(&opts.RouteReflectors, "rr", 1, "rr topology: how many nodes are route reflectors (1 or 2)")
	flag.IntVar(&opts.Racks, "racks", 0, "tor topology: racks the nodes are spread over (default 2)")
	flag.StringVar(&opts.ToRPassword, "password", "", "tor topology: TCP-MD5 password of the ToR sessions (default "+lab.DefaultToRPassword+"; - for none)")
	flag.StringVar(&opts.BinDir, "bin", "bin", "directory holding calico-node, calicoctl, calico and calico-ipam (make build)")
	flag.StringVar(&opts.Dir, "dir", "", "work directory, kept afterwards (default: a temporary one, removed)")
	flag.BoolVar(&hold, "hold", false, "keep the lab up after the report until Ctrl-C")
	flag.BoolVar(&sweep, "sweep", false, "only remove what labs killed with SIGKILL left behind, then exit")
	flag.BoolVar(&verbose, "v", false, "debug logging of the lab (calico-node logs stay in the work directory)")
	flag.Parse()

	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	opts.Log = log
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "tabby-lab needs root: it creates network namespaces")
		return 1
	}
	if _, err := lab.SweepStale(log); err != nil {
		log.Warn("could not remove every leftover of earlier labs", "err", err)
	}
	if sweep {
		return 0
	}
	t, err := lab.ParseTopology(topology)
	if err == nil && t == lab.TopologyCustom {
		err = errors.New("the custom topology is for tests (its sessions come from their own configuration): use mesh, rr or tor")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	opts.Topology = t
	if opts.BinDir, err = filepath.Abs(opts.BinDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}

	// Ctrl-C or SIGTERM cancels ctx: whatever is running returns and the
	// deferred Close tears the lab down.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	l, err := lab.Up(ctx, opts)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			fmt.Fprintln(os.Stderr, "interrupted: the lab was torn down")
			return 130
		}
		fmt.Fprintf(os.Stderr, "the lab did not come up (it was torn down):\n%v\n", err)
		return 1
	}
	defer func() {
		if err := l.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "teardown: %v\n", err)
		}
	}()
	fmt.Printf("\nThe lab is up after %s.\n\n", time.Since(start).Round(100*time.Millisecond))
	l.Summary(os.Stdout)
	ok, err := l.Report(ctx, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "report: %v\n", err)
		return 1
	}
	if hold && ctx.Err() == nil {
		fmt.Printf("\nThe lab stays up; Ctrl-C tears it down. For example:\n  ip netns exec %s ip route\n  %s/calicoctl -c %s/calicoctl.cfg get nodes -o wide\n",
			l.Nodes[0].NS.Name, opts.BinDir, l.Dir())
		<-ctx.Done()
	}
	fmt.Printf("\nTearing down (%s).\n", time.Since(start).Round(100*time.Millisecond))
	if !ok {
		return 1
	}
	return 0
}
