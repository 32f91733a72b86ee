// Command calico-node is Tabby's node agent: it reads Calico's calico-node
// environment (see node/config), registers the node, and runs Felix and the
// agent API until SIGTERM or SIGINT. Everything but the process edges lives
// in node/daemon.
//
// Like Calico's, the binary is also its own exec probe:
// `calico-node -felix-live` and `calico-node -felix-ready` (with -bird-* and
// -bird6-* accepted, as calico.yaml passes them) ask the running daemon's
// health endpoint and exit 0 or 1.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tabbynet/tabby/internal/version"
	"github.com/tabbynet/tabby/node/config"
	"github.com/tabbynet/tabby/node/daemon"
	"github.com/tabbynet/tabby/node/health"
)

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("calico-node", flag.ContinueOnError)
	showVersion := fs.Bool("v", false, "print the version and exit")
	var live, ready bool
	for _, name := range []string{"felix-live", "bird-live", "bird6-live"} {
		fs.BoolFunc(name, "exit 0 if the running calico-node is live (exec liveness probe)", func(string) error { live = true; return nil })
	}
	for _, name := range []string{"felix-ready", "bird-ready", "bird6-ready"} {
		fs.BoolFunc(name, "exit 0 if the running calico-node is ready (exec readiness probe)", func(string) error { ready = true; return nil })
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "calico-node: unexpected argument %q: it is configured by environment variables (see node/config)\n", fs.Arg(0))
		return 2
	}
	if *showVersion {
		fmt.Printf("calico-node (Tabby) %s (commit %s)\n", version.Version, version.Commit)
		return 0
	}
	if live || ready {
		return probe(live, ready)
	}

	cfg, err := config.FromEnv(os.Getenv, os.Hostname)
	if err != nil {
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		for _, line := range strings.Split(err.Error(), "\n") {
			log.Error("refusing to start: fix the environment", "problem", line)
		}
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := daemon.Run(ctx, cfg, daemon.Options{Log: log}); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			log.Error("calico-node failed", "err", line)
		}
		return 1
	}
	return 0
}

// probe is the exec probe: BIRD's checks map to the same endpoint, which
// aggregates every part (a BGP speaker adds its own reporter there).
func probe(live, ready bool) int {
	ep, err := config.HealthFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if !ep.Enabled {
		fmt.Fprintln(os.Stderr, "calico-node: FELIX_HEALTHENABLED is false, so there is no health endpoint to probe")
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, p := range []struct {
		want bool
		path string
	}{{live, "/liveness"}, {ready, "/readiness"}} {
		if !p.want {
			continue
		}
		if err := health.Probe(ctx, ep.Addr(), p.path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}
