package cnilab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// ReferencePluginDir is where Debian's containernetworking-plugins installs
// portmap, ptp and host-local.
const ReferencePluginDir = "/usr/lib/cni"

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binaries builds calico, calico-ipam, calico-node and calicoctl once per
// test binary (one `go build` of the four) and returns the directory holding them.
// Call Cleanup from TestMain to remove it.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "tabby-cnilab-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/calico", "./cmd/calico-ipam", "./cmd/calico-node", "./cmd/calicoctl")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build the plugins, calico-node and calicoctl: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("%v", buildErr)
	}
	for _, p := range []string{"portmap", "ptp", "host-local"} {
		if _, err := os.Stat(filepath.Join(ReferencePluginDir, p)); err != nil {
			t.Fatalf("reference CNI plugin %s is missing from %s: install the Debian package containernetworking-plugins (scripts/install-deps.sh)", p, ReferencePluginDir)
		}
	}
	return buildDir
}

// Cleanup removes the built binaries; call it from TestMain after m.Run.
func Cleanup() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// moduleRoot is the repository root, found from this file's location so that
// tests in any package can build the binaries.
func moduleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the cnilab source file")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("module root not found at %s: %w", root, err)
	}
	return root, nil
}
