package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Commands the lab runs, as built by `make build`.
var labBinaries = []string{"calico-node", "calicoctl", "calico", "calico-ipam"}

// ModuleRoot is the repository root, found from this file's location.
func ModuleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the lab's source file")
	}
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("module root not found at %s: %w", root, err)
	}
	return root, nil
}

// Binaries builds calico-node, calicoctl, calico and calico-ipam into dir
// with one `go build` (the build cache makes a rebuild quick) and returns
// dir, for tests and benchmarks that must not depend on a stale bin/.
func Binaries(ctx context.Context, dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	args := []string{"build", "-o", dir + "/"}
	for _, b := range labBinaries {
		args = append(args, "./cmd/"+b)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build the lab's binaries: %w\n%s", err, out)
	}
	return dir, nil
}
