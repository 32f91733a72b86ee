package calico

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// These tests exercise every failure that happens before the plugin would
// touch the kernel, so they need no privileges: the agent socket is a path
// in a temp dir with nobody (or a dead listener) behind it.

func conf(socket string, extra string) []byte {
	return []byte(`{"cniVersion":"1.1.0","name":"k8s-pod-network","type":"calico",` +
		`"ipam":{"type":"calico-ipam"},"agent_socket":"` + socket + `"` + extra + `}`)
}

func cmdArgs(stdin []byte) *skel.CmdArgs {
	return &skel.CmdArgs{
		ContainerID: "0123456789abcdef",
		Netns:       "/var/run/netns/does-not-matter",
		IfName:      "eth0",
		Args:        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=nginx",
		StdinData:   stdin,
	}
}

// cniError asserts err is a CNI error with the code and a message containing
// every want, and that it serializes to the spec's JSON.
func cniError(t *testing.T, err error, code uint, want ...string) {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("got %T %v, want a *types.Error", err, err)
	}
	if te.Code != code {
		t.Errorf("code %d, want %d (msg %q)", te.Code, code, te.Msg)
	}
	for _, w := range want {
		if !strings.Contains(te.Msg, w) {
			t.Errorf("message %q does not contain %q", te.Msg, w)
		}
	}
	b, jerr := json.Marshal(te)
	if jerr != nil {
		t.Fatal(jerr)
	}
	var back struct {
		CNIVersion string `json:"cniVersion"`
		Code       uint   `json:"code"`
		Msg        string `json:"msg"`
	}
	if err := json.Unmarshal(b, &back); err != nil || back.Code != code || back.Msg != te.Msg {
		t.Errorf("error JSON %s does not round-trip (code %d)", b, code)
	}
}

func TestAddAgentSocketMissingIsTryAgainLater(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	var log bytes.Buffer
	err := New(&log).Add(cmdArgs(conf(sock, "")))
	cniError(t, err, types.ErrTryAgainLater, "calico-node agent is not reachable at "+sock,
		"the socket does not exist", `"agent_socket"`)
}

func TestAddAgentDeadListenerIsTryAgainLater(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	// A socket file with nobody listening: what a SIGKILLed agent leaves.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	err = New(&bytes.Buffer{}).Add(cmdArgs(conf(sock, "")))
	cniError(t, err, types.ErrTryAgainLater, "not reachable at "+sock, "connection refused", "is calico-node running")
}

func TestDelAgentDownFails(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	err := New(&bytes.Buffer{}).Del(cmdArgs(conf(sock, "")))
	cniError(t, err, types.ErrTryAgainLater, "DEL pod default/nginx", "remove the workload endpoint", "not reachable at "+sock)
}

func TestCheckAgentDownFails(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	prev := `,"prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/does-not-matter"}],"ips":[{"address":"10.0.0.1/32","interface":0}]}`
	err := New(&bytes.Buffer{}).Check(cmdArgs(conf(sock, prev)))
	cniError(t, err, types.ErrTryAgainLater, "not reachable at "+sock)
}

func TestStatusAgentDownIsPluginNotAvailable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	err := New(&bytes.Buffer{}).Status(&skel.CmdArgs{StdinData: conf(sock, "")})
	cniError(t, err, types.ErrPluginNotAvailable, "plugin not available", sock)
}

func TestGCAgentDownFails(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	err := New(&bytes.Buffer{}).GC(&skel.CmdArgs{StdinData: conf(sock, `,"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]`)})
	cniError(t, err, types.ErrTryAgainLater, "GC", sock)
}

func TestBadInputErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	tests := []struct {
		name string
		args *skel.CmdArgs
		code uint
		want []string
	}{
		{"mtu of the wrong type", cmdArgs(conf(sock, `,"mtu":"abc"`)), types.ErrInvalidNetworkConfig,
			[]string{`netconf: "mtu": expected a number, got string "abc"`}},
		{"malformed JSON", cmdArgs([]byte(`{"name":`)), types.ErrInvalidNetworkConfig, []string{"netconf: not a JSON object"}},
		{"missing ipam type", cmdArgs([]byte(`{"cniVersion":"1.1.0","name":"n","type":"calico","agent_socket":"` + sock + `"}`)),
			types.ErrInvalidNetworkConfig, []string{`"ipam.type" is missing`, "calico-ipam"}},
		{"malformed CNI_ARGS", func() *skel.CmdArgs { a := cmdArgs(conf(sock, "")); a.Args = "K8S_POD_NAME"; return a }(),
			types.ErrInvalidEnvironmentVariables, []string{`CNI_ARGS "K8S_POD_NAME"`, "invalid pair"}},
		{"no netns", func() *skel.CmdArgs { a := cmdArgs(conf(sock, "")); a.Netns = ""; return a }(),
			types.ErrInvalidNetNS, []string{"CNI_NETNS is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cniError(t, New(&bytes.Buffer{}).Add(tt.args), tt.code, tt.want...)
		})
	}
}

func TestCheckWithoutPrevResult(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	err := New(&bytes.Buffer{}).Check(cmdArgs(conf(sock, "")))
	cniError(t, err, types.ErrInvalidNetworkConfig, "no prevResult")
}

func TestCheckPrevResultWithoutThePodInterface(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	prev := `,"prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"eth1","sandbox":"/x"}],"ips":[{"address":"10.0.0.1/32","interface":0}]}`
	err := New(&bytes.Buffer{}).Check(cmdArgs(conf(sock, prev)))
	cniError(t, err, types.ErrInvalidNetworkConfig, "prevResult has no interface eth0")
}

func TestGCBadAttachments(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	err := New(&bytes.Buffer{}).GC(&skel.CmdArgs{StdinData: conf(sock, `,"cni.dev/valid-attachments":[{"ifname":"eth0"}]`)})
	cniError(t, err, types.ErrInvalidNetworkConfig, "an attachment has no containerID")
}
