package testutil_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/tabbynet/tabby/internal/testutil"
)

func TestNewNetNSIsFreshAndRemoved(t *testing.T) {
	testutil.RequirePrivileged(t)
	var path string
	t.Run("use", func(t *testing.T) {
		n := testutil.NewNetNS(t, "tabby-testutil")
		path = n.Path()
		if !strings.HasPrefix(filepath.Base(path), "tabby-testutil-") || filepath.Dir(path) != testutil.NetNSDir {
			t.Fatalf("namespace path %s", path)
		}
		hostHandle, _ := netns.Get()
		defer hostHandle.Close()
		inner := netns.NsHandle(n.Fd())
		if inner.Equal(hostHandle) {
			t.Fatal("the new namespace is the host's")
		}
		// Fresh: only lo. Created inside, visible inside only.
		h, err := netlink.NewHandleAt(inner)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		links, err := h.LinkList()
		if err != nil {
			t.Fatal(err)
		}
		if len(links) != 1 || links[0].Attrs().Name != "lo" {
			t.Fatalf("a fresh namespace has links %v", links)
		}
		if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "tutest0"}, PeerName: "tutest1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := netlink.LinkByName("tutest0"); err == nil {
			t.Fatal("a veth made in the test namespace shows up in the host namespace")
		}
		// ns.Do runs in the namespace and leaves the caller where it was.
		err = n.Do(func(ns.NetNS) error {
			_, err := os.Stat("/proc/sys/net/ipv4/conf/tutest0")
			return err
		})
		if err != nil {
			t.Errorf("sysctls of the namespace's veth not visible inside it: %v", err)
		}
		after, _ := netns.Get()
		defer after.Close()
		if !after.Equal(hostHandle) {
			t.Error("the calling thread was left in another namespace")
		}
	})
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still exists after the test: %v", path, err)
	}
}
