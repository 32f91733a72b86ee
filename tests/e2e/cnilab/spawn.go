package cnilab

import (
	"os/exec"
	"runtime"
	"sync"
)

// spawner starts every calico-node from one goroutine locked to its own OS
// thread for the life of the test binary. Their parent-death signal
// (SIGKILL) fires when the thread that forked them exits, not the process:
// started from an ordinary goroutine, a thread the Go runtime retires would
// kill a node mid-test; started from this thread, they die exactly when the
// test binary does (a `go test -timeout` panic included) instead of staying
// alive and pinning the lab's network namespaces.
var spawner struct {
	once sync.Once
	reqs chan spawnReq
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

// spawn starts cmd from the spawner's thread.
func spawn(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: see spawner
			for r := range spawner.reqs {
				r.err <- r.cmd.Start()
			}
		}()
	})
	r := spawnReq{cmd: cmd, err: make(chan error, 1)}
	spawner.reqs <- r
	return <-r.err
}
