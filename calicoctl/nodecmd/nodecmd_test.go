package nodecmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"

	"github.com/tabbynet/tabby/api/agentpb"
)

// agent answers Status over a real gRPC server on a unix socket, as
// calico-node does.
type agent struct {
	agentpb.UnimplementedAgentServer
	resp *agentpb.StatusResponse
}

func (a *agent) Status(context.Context, *agentpb.StatusRequest) (*agentpb.StatusResponse, error) {
	return a.resp, nil
}

func serve(t *testing.T, resp *agentpb.StatusResponse) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	agentpb.RegisterAgentServer(s, &agent{resp: resp})
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return sock
}

var now = time.Date(2026, 11, 22, 23, 40, 0, 0, time.UTC)

func run(t *testing.T, sock string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{
		getenv: func(k string) string {
			if k == "CALICO_AGENT_SOCKET" {
				return sock
			}
			return ""
		},
		stdout: &out, stderr: &errOut, now: func() time.Time { return now }, loc: time.UTC,
	}
	cmd := newCommand(c)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

var sample = &agentpb.StatusResponse{
	NodeName: "node-1", Version: "v1.0.0", Live: true, Ready: true, BgpState: "running",
	StartedUnix: now.Add(-time.Hour).Unix(),
	Peers: []*agentpb.BGPPeerStatus{
		{Address: "172.17.8.103", Type: "node-to-node mesh", State: "Active", Info: "Active Socket: Connection refused",
			LastError: "Socket: Connection refused", SinceUnix: now.Add(-48 * time.Hour).Unix(), Asn: 64512},
		{Address: "172.17.8.102", Type: "node-to-node mesh", State: "Established", Info: "Established",
			SinceUnix: time.Date(2026, 11, 22, 23, 30, 4, 0, time.UTC).Unix(), Asn: 64512,
			RoutesReceived: 1, RoutesAccepted: 1, RoutesAdvertised: 1},
		{Address: "10.0.0.254", Type: "global", State: "Established", Info: "Established",
			SinceUnix: time.Date(2026, 11, 22, 23, 0, 0, 0, time.UTC).Unix(), Asn: 65000,
			RoutesReceived: 3, RoutesAccepted: 1, RoutesAdvertised: 1},
	},
}

func TestStatusTable(t *testing.T) {
	out, _, err := run(t, serve(t, sample), "status")
	if err != nil {
		t.Fatal(err)
	}
	want := `Calico process is running.

IPv4 BGP status
+--------------+-------------------+-------+------------+-----------------------------------+
| PEER ADDRESS |     PEER TYPE     | STATE |   SINCE    |               INFO                |
+--------------+-------------------+-------+------------+-----------------------------------+
| 10.0.0.254   | global            | up    | 23:00:00   | Established                       |
| 172.17.8.102 | node-to-node mesh | up    | 23:30:04   | Established                       |
| 172.17.8.103 | node-to-node mesh | start | 2026-11-20 | Active Socket: Connection refused |
+--------------+-------------------+-------+------------+-----------------------------------+

IPv6 BGP status
No IPv6 peers found.

`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

// Calico's documented sample, byte for byte.
func TestStatusTableCalicoSample(t *testing.T) {
	resp := &agentpb.StatusResponse{BgpState: "running", Peers: []*agentpb.BGPPeerStatus{
		{Address: "172.17.8.102", Type: "node-to-node mesh", State: "Established", Info: "Established",
			SinceUnix: time.Date(2026, 11, 22, 23, 30, 4, 0, time.UTC).Unix()},
	}}
	out, _, err := run(t, serve(t, resp), "status")
	if err != nil {
		t.Fatal(err)
	}
	want := `Calico process is running.

IPv4 BGP status
+--------------+-------------------+-------+----------+-------------+
| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |
+--------------+-------------------+-------+----------+-------------+
| 172.17.8.102 | node-to-node mesh | up    | 23:30:04 | Established |
+--------------+-------------------+-------+----------+-------------+

IPv6 BGP status
No IPv6 peers found.

`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

func TestStatusIPv6AndNoBGP(t *testing.T) {
	resp := &agentpb.StatusResponse{BgpState: "running", Peers: []*agentpb.BGPPeerStatus{
		{Address: "fd00::2", Type: "node-to-node mesh", State: "Established", Info: "Established", SinceUnix: now.Add(-time.Minute).Unix()},
	}}
	out, _, err := run(t, serve(t, resp), "status")
	if err != nil {
		t.Fatal(err)
	}
	want := `Calico process is running.

IPv4 BGP status
No IPv4 peers found.

IPv6 BGP status
+--------------+-------------------+-------+----------+-------------+
| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |
+--------------+-------------------+-------+----------+-------------+
| fd00::2      | node-to-node mesh | up    | 23:39:00 | Established |
+--------------+-------------------+-------+----------+-------------+

`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}

	out, _, err = run(t, serve(t, &agentpb.StatusResponse{BgpState: "disabled"}), "status")
	if err != nil {
		t.Fatal(err)
	}
	if want := "Calico process is running.\n\nNone of the BGP backend processes (BIRD or GoBGP) are running.\n"; out != want {
		t.Errorf("no BGP: got %q, want %q", out, want)
	}
}

func TestStatusNotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nobody.sock")
	out, _, err := run(t, sock, "status")
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), sock) {
		t.Fatalf("err = %v, want ErrNotRunning naming the socket", err)
	}
	if out != "Calico process is not running.\n" {
		t.Fatalf("stdout %q", out)
	}
	out, _, err = run(t, sock, "status", "-o", "json")
	if !errors.Is(err, ErrNotRunning) {
		t.Fatalf("json: err = %v", err)
	}
	var got jsonStatus
	if jerr := json.Unmarshal([]byte(out), &got); jerr != nil || got.Running || got.Error == "" {
		t.Fatalf("json: %q (%v)", out, jerr)
	}
}

func TestStatusJSON(t *testing.T) {
	out, _, err := run(t, serve(t, sample), "status", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got jsonStatus
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	want := jsonStatus{
		Running: true, NodeName: "node-1", Version: "v1.0.0", Live: true, Ready: true, StartedAt: "2026-11-22T22:40:00Z",
		BGP: jsonBGP{
			State: "running", NumberEstablishedV4: 2, NumberNotEstablishedV4: 1,
			PeersV4: []jsonPeer{
				{PeerIP: "10.0.0.254", Type: "global", State: "Established", Since: "2026-11-22T23:00:00Z", Info: "Established", ASNumber: 65000, RoutesReceived: 3, RoutesAccepted: 1, RoutesAdvertised: 1},
				{PeerIP: "172.17.8.102", Type: "node-to-node mesh", State: "Established", Since: "2026-11-22T23:30:04Z", Info: "Established", ASNumber: 64512, RoutesReceived: 1, RoutesAccepted: 1, RoutesAdvertised: 1},
				{PeerIP: "172.17.8.103", Type: "node-to-node mesh", State: "Active", Since: "2026-11-20T23:40:00Z", Info: "Active Socket: Connection refused", LastError: "Socket: Connection refused", ASNumber: 64512},
			},
			PeersV6: []jsonPeer{},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("json (-want +got):\n%s", diff)
	}
}

func TestBadOutputFlag(t *testing.T) {
	if _, _, err := run(t, serve(t, sample), "status", "-o", "yaml"); err == nil {
		t.Fatal("-o yaml accepted")
	}
}
