package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/cni-plugin/netconf"
	"github.com/tabbynet/tabby/tests/e2e/cnilab"
)

// TestBadInput: each wrong input is a CNI error with a code and a message
// that says what to fix, and leaves no link, allocation or endpoint behind.
func TestBadInput(t *testing.T) {
	lab := cnilab.New(t)
	node := lab.AddNode(cnilab.NodeOptions{})
	rt := node.Runtime(t)

	// A pool of four addresses, to exhaust.
	createPool(t, lab, "tiny", "10.251.0.0/30", 30)

	cases := []struct {
		name string
		conf map[string]any
		code uint
		want []string
		pod  func(*cnilab.Pod)
	}{
		{name: "netconf key of the wrong type", conf: map[string]any{"mtu": "abc"},
			code: types.ErrInvalidNetworkConfig, want: []string{`netconf: "mtu": expected a number, got string "abc"`}},
		{name: "nested netconf key of the wrong type", conf: map[string]any{"ipam": map[string]any{"type": "calico-ipam", "assign_ipv4": 1}},
			code: types.ErrInvalidNetworkConfig, want: []string{`"ipam.assign_ipv4": expected a boolean`}},
		{name: "unknown pool", conf: map[string]any{"ipam": map[string]any{"type": "calico-ipam", "ipv4_pools": []string{"10.250.0.0/24"}}},
			code: types.ErrInvalidNetworkConfig, want: []string{"calico-ipam", "10.250.0.0/24"}},
		{name: "agent socket absent", conf: map[string]any{"agent_socket": "/run/tabby-e2e-nowhere/agent.sock"},
			code: types.ErrTryAgainLater, want: []string{"calico-node agent is not reachable at /run/tabby-e2e-nowhere/agent.sock", "the socket does not exist"}},
		{name: "another node's name", conf: map[string]any{"nodename": "some-other-node"},
			code: types.ErrInvalidNetworkConfig, want: []string{`names node "some-other-node"`, `serves node "` + node.Name + `"`}},
		{name: "IPAM plugin not installed", conf: map[string]any{"ipam": map[string]any{"type": "no-such-ipam"}},
			code: types.ErrInternal, want: []string{`IPAM plugin "no-such-ipam"`, "no-such-ipam"}},
		{name: "sandbox netns missing", pod: func(p *cnilab.Pod) { p.NSPath = "/run/netns/tabby-e2e-never-made" },
			code: types.ErrInvalidNetNS, want: []string{"create the pod interface", "tabby-e2e-never-made"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			list := cnilab.ConfList(t, node.CalicoConf(tc.conf))
			p := cnilab.NewPod(t, "bad-"+strings.ReplaceAll(strings.ToLower(tc.name), " ", "-"))
			if tc.pod != nil {
				tc.pod(p)
			}
			_, err := rt.Add(list, p)
			cniErr(t, "ADD", err, tc.code, tc.want...)
			t.Logf("%s: %v", tc.name, err)
			assertNothingLeft(t, node, p, vethOf(p))
		})
	}

	t.Run("malformed JSON", func(t *testing.T) {
		p := cnilab.NewPod(t, "bad-json")
		// A CNI error here means stdout held error JSON: libcni's exec
		// parsed it (any other output would be a plain exec error).
		_, err := rt.ExecPlugin("calico", "ADD", []byte(`{"cniVersion":"1.1.0","name":"k8s-pod-network","type":"calico","mtu":`), p)
		cniErr(t, "ADD", err, types.ErrDecodingFailure)
		t.Logf("malformed JSON: %v", err)
		assertNothingLeft(t, node, p, vethOf(p))
	})

	t.Run("no CNI_ARGS: the container ID names the workload", func(t *testing.T) {
		list := cnilab.ConfList(t, node.CalicoConf(nil))
		p := cnilab.NewPod(t, "ignored")
		p.CNIArgs = [][2]string{}
		res, ip := add(t, rt, list, p)
		veth := netconf.VethName("default", p.ContainerID)
		if res.Interfaces[0].Name != veth {
			t.Errorf("host veth %s, want %s (from the container ID)", res.Interfaces[0].Name, veth)
		}
		weps := lab.WorkloadEndpoints(t, p.ContainerID)
		if len(weps) != 1 || weps[0].Spec.Orchestrator != "cni" || !strings.Contains(weps[0].Name, "-cni-") {
			t.Errorf("endpoints %+v, want one of orchestrator cni named by the container ID", weps)
		}
		if err := cnilab.Ping(p, node.IP, 3); err != nil {
			t.Errorf("pod without CNI_ARGS cannot reach the node: %v", err)
		}
		if err := rt.Check(list, p); err != nil {
			t.Errorf("CHECK: %v", err)
		}
		del(t, rt, list, p)
		assertNothingLeft(t, node, p, veth, ip)
	})

	t.Run("exhausted pool", func(t *testing.T) {
		list := cnilab.ConfList(t, node.CalicoConf(map[string]any{
			"ipam": map[string]any{"type": "calico-ipam", "ipv4_pools": []string{"tiny"}}}))
		var added []*cnilab.Pod
		for i := range 6 {
			p := cnilab.NewPod(t, "tiny-"+string(rune('a'+i)))
			_, err := rt.Add(list, p)
			if err == nil {
				added = append(added, p)
				continue
			}
			if len(added) == 0 {
				t.Fatalf("no ADD succeeded in a pool of 4 addresses: %v", err)
			}
			cniErr(t, "ADD into a full pool", err, types.ErrInternal, "calico-ipam")
			if !strings.Contains(strings.ToLower(err.Error()), "exhausted") && !strings.Contains(strings.ToLower(err.Error()), "no free") &&
				!strings.Contains(strings.ToLower(err.Error()), "full") {
				t.Errorf("the error does not say the pool is full: %v", err)
			}
			assertNothingLeft(t, node, p, vethOf(p))
			break
		}
		if len(added) == 0 || len(added) > 4 {
			t.Errorf("%d pods fit in a /30 pool", len(added))
		}
		for _, p := range added {
			del(t, rt, list, p)
		}
	})

	t.Run("agent stopped", func(t *testing.T) {
		list := cnilab.ConfList(t, node.CalicoConf(nil))
		kept := cnilab.NewPod(t, "kept")
		_, ip := add(t, rt, list, kept)
		node.Stop(t)
		p := cnilab.NewPod(t, "while-down")
		_, err := rt.Add(list, p)
		cniErr(t, "ADD with the agent stopped", err, types.ErrTryAgainLater, "calico-node agent is not reachable at "+node.Socket)
		assertNothingLeft(t, node, p, vethOf(p))
		cniErr(t, "STATUS with the agent stopped", rt.Status(cnilab.ConfListLatest(t, node.CalicoConf(nil))), types.ErrPluginNotAvailable, "plugin not available", node.Socket)
		// DEL must not pretend: the endpoint and route outlive the pod
		// unless the agent removes them.
		cniErr(t, "DEL with the agent stopped", rt.Del(list, kept), types.ErrTryAgainLater, "not reachable", node.Socket)
		if len(lab.WorkloadEndpoints(t, kept.ContainerID)) != 1 {
			t.Errorf("the endpoint vanished with no agent")
		}
		node.Start(t)
		del(t, rt, list, kept)
		assertNothingLeft(t, node, kept, vethOf(kept), ip)
	})
	assertIPAMClean(t, lab)
}

// TestCalicoNodeRejectsBadEnv: calico-node with a wrong environment value
// exits at once with a message naming the variable, and opens no socket.
func TestCalicoNodeRejectsBadEnv(t *testing.T) {
	lab := cnilab.New(t)
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"CALICO_IPV4POOL_CIDR": "10.300.0.0/16"}, "CALICO_IPV4POOL_CIDR"},
		{map[string]string{"CALICO_AGENT_SOCKET": "relative/agent.sock"}, "CALICO_AGENT_SOCKET"},
		{map[string]string{"CALICO_NETWORKING_BACKEND": "ospf"}, "CALICO_NETWORKING_BACKEND"},
		{map[string]string{"IP": "300.1.2.3"}, "IP"},
		{map[string]string{"CALICO_IPV4POOL_BLOCK_SIZE": "40"}, "CALICO_IPV4POOL_BLOCK_SIZE"},
		{map[string]string{"ETCD_ENDPOINTS": "etcd:2379"}, "ETCD_ENDPOINTS"},
	}
	for _, tc := range cases {
		var name string
		for k := range tc.env {
			name = k
		}
		t.Run(name, func(t *testing.T) {
			node := lab.AddNode(cnilab.NodeOptions{ExtraEnv: tc.env, NoStart: true})
			if err := node.StartNoWait(); err != nil {
				t.Fatal(err)
			}
			exitErr, done := node.Exited(30 * time.Second)
			if !done {
				t.Fatalf("calico-node with %v is still running after 30s:\n%s", tc.env, node.LogTail(20))
			}
			if exitErr == nil {
				t.Errorf("calico-node with %v exited 0", tc.env)
			}
			if log := node.LogTail(20); !strings.Contains(log, tc.want) {
				t.Errorf("calico-node's output does not name %s:\n%s", tc.want, log)
			}
			sock := node.Socket
			if v, ok := tc.env["CALICO_AGENT_SOCKET"]; ok {
				sock = v
			}
			if _, err := os.Stat(filepath.Clean(sock)); err == nil {
				t.Errorf("calico-node opened its socket %s despite the bad environment", sock)
			}
		})
	}
}

// createPool stores an IPPool directly in the datastore, as calicoctl does.
func createPool(t *testing.T, lab *cnilab.Lab, name, cidr string, blockSize int) {
	t.Helper()
	r, err := v3.NewResource("IPPool")
	if err != nil {
		t.Fatal(err)
	}
	pool := r.(*v3.IPPool)
	pool.Name = name
	pool.Spec.CIDR = cidr
	pool.Spec.BlockSize = blockSize
	v3.SetDefaults(pool)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := lab.Store.Create(ctx, pool); err != nil {
		t.Fatalf("create IPPool %s: %v", name, err)
	}
}
