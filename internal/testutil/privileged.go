// Package testutil holds the few helpers Tabby's privileged tests share:
// deciding whether a test may touch the kernel, and giving each test a fresh,
// named network namespace that is removed when the test ends.
//
// It must stay tiny and must never touch the host's own namespace: every
// kernel object a test creates lives inside a namespace made here.
package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// EnvRequirePrivileged is the environment variable CI sets to "1" so that a
// privileged test that cannot run is a failure rather than a silent skip.
const EnvRequirePrivileged = "TABBY_REQUIRE_PRIVILEGED"

// NetNSDir is where named namespaces are bind-mounted; `ip -n <name>` looks here.
const NetNSDir = "/run/netns"

var (
	probeOnce sync.Once
	probeErr  error
)

// RequirePrivileged skips the test unless it runs as root and can create a
// network namespace. When TABBY_REQUIRE_PRIVILEGED=1 it fails instead of
// skipping, so a CI machine that lost its privileges cannot pass by skipping.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	reason := ""
	if os.Geteuid() != 0 {
		reason = "needs root"
	} else {
		// Being root is not enough inside some containers: prove that a
		// namespace can actually be made (once per test binary).
		probeOnce.Do(func() { probeErr = probeNetNS() })
		if probeErr != nil {
			reason = fmt.Sprintf("cannot create a network namespace: %v", probeErr)
		}
	}
	if reason == "" {
		return
	}
	if os.Getenv(EnvRequirePrivileged) == "1" {
		t.Fatalf("privileged test cannot run (%s) and %s=1", reason, EnvRequirePrivileged)
	}
	t.Skipf("privileged test skipped: %s (set %s=1 to make this a failure)", reason, EnvRequirePrivileged)
}

func probeNetNS() error {
	name, err := uniqueName("tabby-probe")
	if err != nil {
		return err
	}
	if err := createNamed(name); err != nil {
		return err
	}
	return deleteNamed(name)
}

// NewNetNS creates a fresh named network namespace "<prefix>-<random hex>"
// under /run/netns (so `ip -n <name> ...` works in tests) and removes it in
// t.Cleanup. The calling thread's namespace is never changed. Work inside the
// namespace with ns.Do (which locks the OS thread) or with netlink handles
// made by netlink.NewHandleAt(netns.NsHandle(n.Fd())).
func NewNetNS(t testing.TB, prefix string) ns.NetNS {
	t.Helper()
	name, err := uniqueName(prefix)
	if err != nil {
		t.Fatalf("name a network namespace: %v", err)
	}
	if err := createNamed(name); err != nil {
		t.Fatalf("create network namespace %s: %v", name, err)
	}
	n, err := ns.GetNS(filepath.Join(NetNSDir, name))
	if err != nil {
		_ = deleteNamed(name)
		t.Fatalf("open network namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		// Closing our handle and removing the bind mount drops the last
		// references, so the kernel destroys the namespace and every veth in it.
		if err := n.Close(); err != nil {
			t.Errorf("close network namespace %s: %v", name, err)
		}
		if err := deleteNamed(name); err != nil {
			t.Errorf("delete network namespace %s: %v", name, err)
		}
	})
	return n
}

// deleteNamed unmounts and removes /run/netns/<name>. The removal is
// retried briefly: a short-lived `ip -n` of another process that copied our
// mount into its own mount namespace can make it fail with EBUSY for a moment.
func deleteNamed(name string) error {
	path := filepath.Join(NetNSDir, name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	var err error
	for range 50 {
		if err = os.Remove(path); err == nil || !errors.Is(err, unix.EBUSY) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

var sharedOnce sync.Once

// shareNetNSDir makes /run/netns a shared mount point of its own, as
// `ip netns add` does. Without it, an `ip netns add` running later (another
// test, another engineer) bind-mounts /run/netns over itself and hides our
// namespace mounts underneath, where they can no longer be unmounted.
func shareNetNSDir() error {
	var err error
	sharedOnce.Do(func() {
		if err = os.MkdirAll(NetNSDir, 0o755); err != nil {
			return
		}
		err = unix.Mount("", NetNSDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if errors.Is(err, unix.EINVAL) { // not a mount point yet
			if err = unix.Mount(NetNSDir, NetNSDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return
			}
			err = unix.Mount("", NetNSDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		}
		if err != nil {
			err = fmt.Errorf("make %s a shared mount point: %w", NetNSDir, err)
		}
	})
	return err
}

func uniqueName(prefix string) (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return prefix + "-" + hex.EncodeToString(b), nil
}

// createNamed makes the namespace on a dedicated, locked OS thread: unshare
// moves that thread into the new namespace, and a thread left in the wrong
// namespace must never run other goroutines. If switching back fails the
// thread stays locked and the Go runtime discards it when the goroutine ends.
func createNamed(name string) error {
	if err := shareNetNSDir(); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("open current namespace: %w", err)
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if err != nil {
			restoreErr := netns.Set(orig)
			if restoreErr == nil {
				runtime.UnlockOSThread()
			}
			errc <- errors.Join(err, restoreErr)
			return
		}
		h.Close()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("return to the original namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	return <-errc
}
