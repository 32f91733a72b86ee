package dataplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// Netlink is the seam to the kernel's routing tables: the five calls the
// reconciler needs, with netlink's own types, so *netlink.Handle (for the
// current namespace or one made with netlink.NewHandleAt) satisfies it as is.
// RouteAdd (exclusive create) is there next to RouteReplace for safety: a
// replace overwrites whatever route holds the same destination and metric,
// of any protocol, so Tabby replaces only routes it already owns and creates
// new ones with an add that the kernel refuses if someone else got there first.
type Netlink interface {
	RouteListFiltered(family int, filter *netlink.Route, filterMask uint64) ([]netlink.Route, error)
	RouteAdd(route *netlink.Route) error
	RouteReplace(route *netlink.Route) error
	RouteDel(route *netlink.Route) error
	LinkByName(name string) (netlink.Link, error)
}

var _ Netlink = (*netlink.Handle)(nil)

// Sysctls is the seam to /proc/sys. Names are paths below /proc/sys with
// slashes ("net/ipv4/conf/cali123/proxy_arp"), because interface names may
// contain dots. Get returns the value without the trailing newline.
type Sysctls interface {
	Get(name string) (string, error)
	Set(name, value string) error
}

// ProcSys reads and writes /proc/sys. The net.* entries there belong to the
// network namespace of the thread that opens them, so with NetNS set every
// access runs inside that namespace (ns.Do locks the OS thread); with NetNS
// nil it uses the caller's namespace, which is the host's for the node agent.
type ProcSys struct {
	NetNS ns.NetNS
}

var _ Sysctls = ProcSys{}

func procSysPath(name string) (string, error) {
	clean := filepath.Clean("/" + name)
	if clean == "/" || clean != "/"+name {
		return "", fmt.Errorf("invalid sysctl name %q", name)
	}
	return filepath.Join("/proc/sys", clean), nil
}

func (p ProcSys) do(f func() error) error {
	if p.NetNS == nil {
		return f()
	}
	return p.NetNS.Do(func(ns.NetNS) error { return f() })
}

// Get reads one sysctl.
func (p ProcSys) Get(name string) (string, error) {
	path, err := procSysPath(name)
	if err != nil {
		return "", err
	}
	var out string
	err = p.do(func() error {
		b, err := os.ReadFile(path)
		out = strings.TrimRight(string(b), "\n")
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", name, err)
	}
	return out, nil
}

// Set writes one sysctl.
func (p ProcSys) Set(name, value string) error {
	path, err := procSysPath(name)
	if err != nil {
		return err
	}
	err = p.do(func() error {
		// O_WRONLY without O_CREATE: a sysctl that does not exist (an
		// interface that is gone, IPv6 disabled) is an error, not a new file.
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, werr := f.WriteString(value)
		return errors.Join(werr, f.Close())
	})
	if err != nil {
		return fmt.Errorf("write sysctl %s=%s: %w", name, value, err)
	}
	return nil
}
