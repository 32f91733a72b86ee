package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// Listen opens the agent's unix socket at path with mode 0600: only root
// (the kubelet's plugins) may call the agent. A missing directory is
// created 0700; a stale socket from an earlier run is removed, but any
// other file at the path is left alone and refused. The socket is bound
// under a temporary name, restricted, and renamed into place, so it is
// never reachable with looser permissions.
func Listen(path string) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the agent socket directory %s: %w", dir, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("agent socket %s: a %s is in the way (not a socket): remove it or set CALICO_AGENT_SOCKET elsewhere", path, describe(fi.Mode()))
		}
		// Another agent answering there means two calico-nodes on one host.
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("agent socket %s: another process is serving it (a second calico-node on this host?)", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove the stale agent socket %s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("agent socket %s: %w", path, err)
	}

	tmp := filepath.Join(dir, "."+filepath.Base(path)+"."+strconv.Itoa(os.Getpid()))
	_ = os.Remove(tmp)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on the agent socket %s: %w", path, err)
	}
	// The file is ours to remove at shutdown, under its final name.
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("restrict the agent socket %s to mode 0600: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("move the agent socket into place at %s: %w", path, err)
	}
	return l, nil
}

func describe(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m.Type() == fs.ModeSymlink:
		return "symbolic link"
	}
	return "file"
}
