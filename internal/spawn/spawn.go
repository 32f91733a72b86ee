// Package spawn starts child processes whose parent-death signal is tied to
// the life of the whole Go process, for the test harnesses and the lab that
// run calico-node, BIRD and FRR.
//
// Linux fires PR_SET_PDEATHSIG when the *thread* that forked the child
// exits, not the process. Started from an ordinary goroutine, a thread the Go
// runtime retires would kill a daemon mid-run; started from one goroutine
// locked to its own OS thread for the life of the process, children die
// exactly when the process does (a `go test -timeout` panic or a SIGKILLed
// lab included) instead of staying alive and pinning network namespaces.
package spawn

import (
	"os/exec"
	"runtime"
	"sync"
)

var spawner struct {
	once sync.Once
	reqs chan request
}

type request struct {
	cmd *exec.Cmd
	err chan error
}

// Start starts cmd (cmd.Start) from the spawner's thread. Set
// cmd.SysProcAttr.Pdeathsig for the child to die with this process.
func Start(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan request)
		go func() {
			runtime.LockOSThread() // never unlocked: see the package comment
			for r := range spawner.reqs {
				r.err <- r.cmd.Start()
			}
		}()
	})
	r := request{cmd: cmd, err: make(chan error, 1)}
	spawner.reqs <- r
	return <-r.err
}
