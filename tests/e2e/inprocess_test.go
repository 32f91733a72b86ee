package e2e

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/tabbynet/tabby/cni-plugin/netconf"
	"github.com/tabbynet/tabby/tests/e2e/cnilab"
)

// TestCalicoIPAMInProcess: with "ipam": {"type": "calico-ipam"}, the calico
// plugin runs calico-ipam's ADD, CHECK and DEL itself instead of exec'ing the
// binary: a plugin directory without calico-ipam still gives pods their
// addresses (under the same handle, from the same pool) and releases them.
// The calico-ipam binary keeps working on its own (the other tests run it
// through chains that name it, and with host-local).
func TestCalicoIPAMInProcess(t *testing.T) {
	lab := cnilab.New(t)
	node := lab.AddNode(cnilab.NodeOptions{})
	only := t.TempDir()
	b, err := os.ReadFile(filepath.Join(lab.Bin, "calico"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(only, "calico"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	rt := node.RuntimeWithPath(t, only, cnilab.ReferencePluginDir)
	list := cnilab.ConfList(t, node.CalicoConf(nil))

	a, b2 := cnilab.NewPod(t, "inproc-a"), cnilab.NewPod(t, "inproc-b")
	_, ipA := add(t, rt, list, a)
	_, ipB := add(t, rt, list, b2)
	if _, pool, _ := net.ParseCIDR("10.244.0.0/16"); !pool.Contains(ipA) || !pool.Contains(ipB) || ipA.Equal(ipB) {
		t.Fatalf("addresses %s and %s: want two different ones from the pool 10.244.0.0/16", ipA, ipB)
	}
	if got := lab.HandleIPs(t, netconf.HandleID(a.ContainerID)); len(got) != 1 || got[0] != ipA.String() {
		t.Fatalf("handle of %s holds %v, want [%s]", a.Name, got, ipA)
	}
	if err := cnilab.Ping(a, ipB, 3); err != nil {
		t.Errorf("pods cannot reach each other: %v", err)
	}
	if err := rt.Check(list, a); err != nil {
		t.Errorf("CHECK without the calico-ipam binary: %v", err)
	}
	del(t, rt, list, a)
	del(t, rt, list, b2)
	assertNothingLeft(t, node, a, vethOf(a), ipA)
	assertNothingLeft(t, node, b2, vethOf(b2), ipB)
}
