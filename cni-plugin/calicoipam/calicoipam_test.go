package calicoipam

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// Failures before any allocation, with nobody behind the agent socket.

func args(socket, ipam string) *skel.CmdArgs {
	return &skel.CmdArgs{
		ContainerID: "c0ffee",
		Netns:       "/var/run/netns/x",
		IfName:      "eth0",
		Args:        "K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=db-0",
		StdinData: []byte(`{"cniVersion":"1.1.0","name":"k8s-pod-network","type":"calico","agent_socket":"` + socket +
			`","ipam":` + ipam + `}`),
	}
}

func wantCode(t *testing.T, err error, code uint, want ...string) {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("got %v, want CNI error %d", err, code)
	}
	if te.Code != code {
		t.Errorf("code %d (%s), want %d", te.Code, te.Msg, code)
	}
	for _, w := range want {
		if !strings.Contains(te.Msg, w) {
			t.Errorf("message %q lacks %q", te.Msg, w)
		}
	}
}

func TestAgentDown(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	p := New(&bytes.Buffer{})
	a := args(sock, `{"type":"calico-ipam"}`)
	wantCode(t, p.Add(a), types.ErrTryAgainLater, "calico-ipam: assign addresses", "not reachable at "+sock)
	wantCode(t, p.Del(a), types.ErrTryAgainLater, "calico-ipam: release addresses of handle k8s-pod-network.c0ffee", sock)
	wantCode(t, p.Check(a), types.ErrTryAgainLater, sock)
	wantCode(t, p.Status(&skel.CmdArgs{StdinData: a.StdinData}), types.ErrPluginNotAvailable, "plugin not available", sock)
	wantCode(t, p.GC(&skel.CmdArgs{StdinData: a.StdinData}), types.ErrTryAgainLater, sock)
}

func TestNothingToAssign(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	err := New(&bytes.Buffer{}).Add(args(sock, `{"type":"calico-ipam","assign_ipv4":"false","assign_ipv6":"false"}`))
	wantCode(t, err, types.ErrInvalidNetworkConfig, `"ipam.assign_ipv4" and "ipam.assign_ipv6" are both false`)
}

func TestBadPoolsType(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	err := New(&bytes.Buffer{}).Add(args(sock, `{"type":"calico-ipam","ipv4_pools":"default-ipv4-ippool"}`))
	wantCode(t, err, types.ErrInvalidNetworkConfig, `"ipam.ipv4_pools": expected a list of strings, got string "default-ipv4-ippool"`)
}
