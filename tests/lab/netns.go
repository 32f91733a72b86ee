package lab

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named namespaces are bind-mounted (`ip netns` looks here).
const netnsDir = "/run/netns"

// NetNS is a named network namespace the lab created.
type NetNS struct {
	Name string // full name, "tlab-<pid>-<seq>-<role>"
	ns   ns.NetNS
}

// Path is the namespace's bind mount, for CNI_NETNS and setns.
func (n *NetNS) Path() string { return filepath.Join(netnsDir, n.Name) }

// newNetNS creates the namespace "<prefix>-<role>" with lo up, and pushes
// its removal.
func (e *env) newNetNS(role string) (*NetNS, error) {
	name := e.name(role)
	if err := createNamedNetNS(name); err != nil {
		return nil, fmt.Errorf("create network namespace %s: %w", name, err)
	}
	h, err := ns.GetNS(filepath.Join(netnsDir, name))
	if err != nil {
		_ = netns.DeleteNamed(name)
		return nil, fmt.Errorf("open network namespace %s: %w", name, err)
	}
	n := &NetNS{Name: name, ns: h}
	e.push("delete netns "+name, func() error {
		// Our handle and the bind mount are the last references once the
		// processes inside are gone: the kernel then destroys the namespace
		// and every veth, route and iptables rule in it.
		return errors.Join(h.Close(), netns.DeleteNamed(name))
	})
	if err := n.Netlink(func(h *netlink.Handle) error {
		lo, err := h.LinkByName("lo")
		if err != nil {
			return err
		}
		return h.LinkSetUp(lo)
	}); err != nil {
		return nil, fmt.Errorf("bring lo up in %s: %w", name, err)
	}
	return n, nil
}

// createNamedNetNS makes the namespace from a dedicated locked thread:
// unshare moves that thread, which must never run anything else. If it
// cannot go back, it stays locked and the runtime discards it.
func createNamedNetNS(name string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("open the current namespace: %w", err)
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if err != nil {
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
			errc <- err
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

// Do runs f on a locked thread inside the namespace: sockets f opens belong
// to it, and processes f forks start in it.
func (n *NetNS) Do(f func() error) error {
	return n.ns.Do(func(ns.NetNS) error { return f() })
}

// Netlink runs f with a netlink handle bound to the namespace; the calling
// thread never changes namespace.
func (n *NetNS) Netlink(f func(h *netlink.Handle) error) error {
	h, err := netlink.NewHandleAt(netns.NsHandle(n.ns.Fd()), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink handle in %s: %w", n.Name, err)
	}
	defer h.Close()
	return f(h)
}

// Exec runs a command inside the namespace (`ip netns exec`) and returns
// its combined output; the error quotes the output.
func (n *NetNS) Exec(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"netns", "exec", n.Name}, args...)
	out, err := exec.CommandContext(ctx, "ip", full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s (in %s): %w: %s", strings.Join(args, " "), n.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// sysctl sets one sysctl inside the namespace.
func (n *NetNS) sysctl(ctx context.Context, kv string) error {
	_, err := n.Exec(ctx, "sysctl", "-qw", kv)
	return err
}
