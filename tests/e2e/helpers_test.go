package e2e

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/tabbynet/tabby/cni-plugin/netconf"
	"github.com/tabbynet/tabby/tests/e2e/cnilab"
)

// add is a CNI ADD that must succeed; it returns the pod's address.
func add(t *testing.T, rt *cnilab.Runtime, list *libcni.NetworkConfigList, p *cnilab.Pod) (*current.Result, net.IP) {
	t.Helper()
	res, err := rt.Add(list, p)
	if err != nil {
		t.Fatalf("ADD %s: %v", p.Name, err)
	}
	if len(res.IPs) == 0 {
		t.Fatalf("ADD %s: result has no IPs: %+v", p.Name, res)
	}
	return res, res.IPs[0].Address.IP
}

// del is a CNI DEL that must succeed.
func del(t *testing.T, rt *cnilab.Runtime, list *libcni.NetworkConfigList, p *cnilab.Pod) {
	t.Helper()
	if err := rt.Del(list, p); err != nil {
		t.Fatalf("DEL %s: %v", p.Name, err)
	}
}

// cniErr asserts err is a CNI error with this code whose message contains
// every want.
func cniErr(t *testing.T, what string, err error, code uint, want ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want CNI error %d", what, code)
		return
	}
	var te *types.Error
	if !errors.As(err, &te) {
		t.Errorf("%s: got %T %v, want a CNI error %d", what, err, err, code)
		return
	}
	if te.Code != code {
		t.Errorf("%s: code %d (%s), want %d", what, te.Code, te.Msg, code)
	}
	for _, w := range want {
		if !strings.Contains(te.Error(), w) {
			t.Errorf("%s: message %q does not say %q", what, te.Error(), w)
		}
	}
}

// vethOf is the host veth name the pod must get.
func vethOf(p *cnilab.Pod) string { return netconf.VethName(p.Namespace, p.Name) }

// assertNothingLeft checks that no trace of the pod remains: no host veth,
// no host route to its addresses, no allocation under its handle, no
// WorkloadEndpoint.
func assertNothingLeft(t *testing.T, node *cnilab.Node, p *cnilab.Pod, veth string, ips ...net.IP) {
	t.Helper()
	if _, ok := node.Links(t, "cali")[veth]; ok {
		t.Errorf("%s: host veth %s is left on %s", p.Name, veth, node.Name)
	}
	for _, ip := range ips {
		if r := node.RoutesTo(t, ip); len(r) > 0 {
			t.Errorf("%s: route to %s is left on %s: %v", p.Name, ip, node.Name, r)
		}
	}
	if got := node.Lab.HandleIPs(t, netconf.HandleID(p.ContainerID)); len(got) > 0 {
		t.Errorf("%s: addresses %v are still allocated to its handle", p.Name, got)
	}
	if weps := node.Lab.WorkloadEndpoints(t, p.ContainerID); len(weps) > 0 {
		t.Errorf("%s: WorkloadEndpoint %s/%s is left", p.Name, weps[0].Namespace, weps[0].Name)
	}
}

// waitLinkGone waits, for a while, until the node has no link of this name:
// for links the kernel removes asynchronously (those of a deleted netns).
// Whether it is gone is for the caller to assert.
func waitLinkGone(t *testing.T, node *cnilab.Node, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := node.Links(t, "cali")[name]; !ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
