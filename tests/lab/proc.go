package lab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tabbynet/tabby/internal/spawn"
)

// Proc is a process the lab started inside one of its namespaces. It is
// signalled only by its PID.
type Proc struct {
	Name    string // for messages: "calico-node node1", "bird bird1"
	LogPath string // its stdout and stderr

	cmd  *exec.Cmd
	done chan struct{}
	err  error // exit status, set before done is closed
}

// startProc runs argv inside namespace n with env (PATH is added), output
// to logPath, in its own process group (a Ctrl-C meant for the lab does not
// reach it: the lab stops it in order) and with SIGKILL as parent-death
// signal (so a lab killed with SIGKILL does not leave it running; daemons
// that change user, like FRR's, lose that and are left to SweepStale). The
// undo step stops it: SIGTERM, then SIGKILL after grace.
func (e *env) startProc(n *NetNS, name string, argv []string, env []string, logPath string, grace time.Duration) (*Proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: open its log: %w", name, err)
	}
	args := append([]string{"netns", "exec", n.Name}, argv...)
	cmd := exec.Command("ip", args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// `ip netns exec` execs the program after setns, so the PID is the
	// program's own.
	if err := spawn.Start(cmd); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	e.recordPID(cmd.Process.Pid)
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	e.push("stop "+name, func() error { return p.Stop(grace) })
	return p, nil
}

// PID is the process ID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Signal sends sig to the process (by PID); a process already gone is not
// an error.
func (p *Proc) Signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s (pid %d): %w", p.Name, p.PID(), err)
	}
	return nil
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Proc) Kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.done
	return nil
}

// Stop sends SIGTERM, waits up to grace, then SIGKILL. It is idempotent.
func (p *Proc) Stop(grace time.Duration) error {
	if ok, _ := p.Exited(); ok {
		return nil
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	return p.Kill()
}

// LogTail is the end of the process's log, for error messages.
func (p *Proc) LogTail(lines int) string { return tail(p.LogPath, lines) }

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// Usage is what a process has used so far, from /proc.
type Usage struct {
	// PeakRSS is VmHWM: the most resident memory it ever had, in bytes.
	PeakRSS int64
	// RSS is VmRSS now, in bytes.
	RSS int64
	// CPU is the time the process (all its threads) ran on a CPU, user and
	// system.
	CPU time.Duration
}

// Usage reads the process's memory and CPU use; it fails once the process
// has exited (its /proc entry is gone).
func (p *Proc) Usage() (Usage, error) { return ProcUsage(p.PID()) }

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Tabby runs on.
const clockTick = 100

// ProcUsage reads /proc/<pid>/status and /proc/<pid>/stat.
func ProcUsage(pid int) (Usage, error) {
	var u Usage
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, fmt.Errorf("read memory use of pid %d: %w", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmHWM":
			u.PeakRSS = kb * 1024
		case "VmRSS":
			u.RSS = kb * 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, fmt.Errorf("read CPU use of pid %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces and parentheses: fields
	// are counted after its closing parenthesis. utime and stime are
	// fields 14 and 15.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return u, fmt.Errorf("parse /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return u, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return u, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	u.CPU = time.Duration(ut+st) * time.Second / clockTick
	// schedstat's first field is the time on a CPU in nanoseconds, per
	// thread: summed over the threads it is the same quantity without
	// stat's 10 ms ticks (a BIRD that used 4 ms reports 0 there). Threads
	// that already exited are missing from the sum, so the larger wins.
	var ns int64
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	for _, t := range tasks {
		if b, err := os.ReadFile(t); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					ns += v
				}
			}
		}
	}
	u.CPU = max(u.CPU, time.Duration(ns))
	return u, nil
}
