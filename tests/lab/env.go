package lab

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/vishvananda/netns"
)

// NamePrefix starts the name of every network namespace a lab creates:
// "tlab-<pid>-<seq>-<role>". The PID lets SweepStale tell a dead run's
// leftovers from a live one's.
const NamePrefix = "tlab-"

var labSeq atomic.Int64

// env is what one lab run owns: a naming prefix, a work directory and a
// stack of undo steps. Every step that creates something pushes its undo
// right after creating it, so a failure half-way through building still
// tears down exactly what exists.
type env struct {
	prefix string // "tlab-<pid>-<seq>"
	dir    string // work directory, removed by the last undo step
	log    *slog.Logger

	mu     sync.Mutex
	steps  []undoStep
	closed bool
	pids   *os.File // "<pid> <marker>" lines for SweepStale
}

type undoStep struct {
	what string
	fn   func() error
}

func newEnv(dir string, log *slog.Logger) (*env, error) {
	seq := labSeq.Add(1)
	prefix := fmt.Sprintf("%s%d-%d", NamePrefix, os.Getpid(), seq)
	e := &env{prefix: prefix, log: log}
	if dir == "" {
		d, err := os.MkdirTemp("", prefix+"-")
		if err != nil {
			return nil, fmt.Errorf("make the lab's work directory: %w", err)
		}
		dir = d
		e.push("remove work directory "+dir, func() error { return os.RemoveAll(dir) })
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("make the lab's work directory %s: %w", dir, err)
	}
	// FRR drops to user frr and BIRD/FRR read their configs from here.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open up the lab's work directory %s: %w", dir, err)
	}
	e.dir = dir
	f, err := os.OpenFile(filepath.Join(dir, "pids"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.close()
		return nil, fmt.Errorf("open the lab's process list: %w", err)
	}
	e.pids = f
	e.push("close process list", f.Close)
	registerLive(e)
	return e, nil
}

// name is the full name of a namespace of this lab.
func (e *env) name(role string) string { return e.prefix + "-" + role }

// push records how to undo something just created.
func (e *env) push(what string, fn func() error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.steps = append(e.steps, undoStep{what: what, fn: fn})
}

// recordPID notes a started process so that SweepStale can kill it if this
// lab dies without running its undo steps.
func (e *env) recordPID(pid int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pids != nil {
		fmt.Fprintf(e.pids, "%d\n", pid)
	}
}

// close runs every undo step in reverse order, once; later calls return nil.
// It keeps going after a failure and returns all of them.
func (e *env) close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	steps := e.steps
	e.steps = nil
	e.pids = nil
	e.mu.Unlock()
	unregisterLive(e)
	var errs []error
	for i := len(steps) - 1; i >= 0; i-- {
		if err := steps[i].fn(); err != nil {
			errs = append(errs, fmt.Errorf("teardown: %s: %w", steps[i].what, err))
		}
	}
	return errors.Join(errs...)
}

var live = struct {
	sync.Mutex
	envs map[*env]struct{}
}{envs: map[*env]struct{}{}}

func registerLive(e *env) {
	live.Lock()
	defer live.Unlock()
	live.envs[e] = struct{}{}
}

func unregisterLive(e *env) {
	live.Lock()
	defer live.Unlock()
	delete(live.envs, e)
}

// CloseAll tears down every lab of this process that is still open. It is
// what CloseOnSignal runs; tests may call it from TestMain after m.Run.
func CloseAll() error {
	live.Lock()
	envs := make([]*env, 0, len(live.envs))
	for e := range live.envs {
		envs = append(envs, e)
	}
	live.Unlock()
	var errs []error
	for _, e := range envs {
		errs = append(errs, e.close())
	}
	return errors.Join(errs...)
}

// CloseOnSignal makes SIGINT (Ctrl-C) and SIGTERM tear down every open lab
// and then exit with 128+signal, for a process (a test binary) that has no
// context to cancel. A second signal while tearing down exits at once. The
// returned function stops listening.
func CloseOnSignal(log *slog.Logger) (stop func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			log.Warn("signal received: tearing every lab down", "signal", sig.String())
			go func() {
				<-ch
				os.Exit(128 + int(sig.(syscall.Signal)))
			}()
			if err := CloseAll(); err != nil {
				log.Error("teardown after a signal was not clean", "err", err)
			}
			os.Exit(128 + int(sig.(syscall.Signal)))
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// SweepStale removes what labs of dead processes left behind (they were
// killed with SIGKILL and could not run their teardown): processes they
// recorded (only if /proc still shows a command line naming that lab's work
// directory, so a reused PID is never touched), namespaces named
// "tlab-<deadpid>-*" and their work directories under the temp dir. Labs of
// live processes are never touched. It returns what it removed.
func SweepStale(log *slog.Logger) ([]string, error) {
	var removed []string
	var errs []error
	dead := func(s string) (string, bool) {
		rest, ok := strings.CutPrefix(s, NamePrefix)
		if !ok {
			return "", false
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 {
			return "", false
		}
		return pidStr, !processAlive(pid)
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), NamePrefix+"*"))
	for _, d := range dirs {
		if _, ok := dead(filepath.Base(d)); !ok {
			continue
		}
		for _, pid := range recordedPIDs(filepath.Join(d, "pids")) {
			cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err != nil || !strings.Contains(string(cmdline), d) {
				continue
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
				removed = append(removed, fmt.Sprintf("process %d", pid))
			}
		}
	}
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !os.IsNotExist(err) {
		errs = append(errs, fmt.Errorf("list %s: %w", netnsDir, err))
	}
	for _, ent := range entries {
		if _, ok := dead(ent.Name()); !ok {
			continue
		}
		if err := netns.DeleteNamed(ent.Name()); err != nil {
			errs = append(errs, fmt.Errorf("delete stale namespace %s: %w", ent.Name(), err))
			continue
		}
		removed = append(removed, "netns "+ent.Name())
	}
	for _, d := range dirs {
		if _, ok := dead(filepath.Base(d)); !ok {
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "dir "+d)
	}
	for _, r := range removed {
		log.Info("removed a dead lab's leftover", "what", r)
	}
	return removed, errors.Join(errs...)
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func recordedPIDs(path string) []int {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			out = append(out, pid)
		}
	}
	return out
}
