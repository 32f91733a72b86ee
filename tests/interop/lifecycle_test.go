package interop

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tabbynet/tabby/tests/lab"
)

// longGR makes the mesh's graceful-restart time far longer than any wait
// in these tests: a route that disappears did so because it was withdrawn,
// not because a restart timer ran out.
const longGR = `apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: true
  asNumber: 64512
  nodeMeshMaxRestartTime: 10m0s
`

// TestNodeRemoved: a node is decommissioned (its calico-node stopped with
// SIGTERM, which leaves its routes with the peers under graceful restart)
// and its Node resource deleted: the other nodes drop the session and the
// node's routes at once, long before the 10-minute restart time.
func TestNodeRemoved(t *testing.T) {
	l := up(t, lab.Options{Topology: lab.TopologyMesh, Nodes: 3, PodsPerNode: 1, ExtraYAML: longGR})
	ctx := testCtx(t, 3*time.Minute)
	gone := l.Nodes[2]
	rest := l.Nodes[:2]
	blocks := blocksOf(ctx, t, l, gone.Name)
	if err := gone.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Calicoctl(ctx, "", "delete", "node", gone.Name); err != nil {
		t.Fatal(err)
	}
	for _, n := range rest {
		err := waitUntil(ctx, 2*time.Minute, func() error {
			peers, err := n.PeerStates(ctx)
			if err != nil {
				return err
			}
			if p, ok := peers[gone.IP]; ok {
				return fmt.Errorf("%s still has a session with %s (%s)", n.Name, gone.Name, p.GetState())
			}
			routes, err := n.NS.Routes(lab.RouteProtocol)
			if err != nil {
				return err
			}
			for _, r := range routes {
				if slices.Contains(blocks, r.Dst) {
					return fmt.Errorf("%s still routes %s's block: %s", n.Name, gone.Name, r)
				}
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	requireRoutes(t, ctx, l, rest...)
	// The remaining pods still reach each other.
	if err := lab.Ping(ctx, l.Pods[0].NS, l.Pods[1].IP); err != nil {
		t.Error(err)
	}
}

// TestAgentKilledUnderPing: calico-node of node1 is SIGKILLed and started
// again while pod1 (node1) pings pod2 (node2) every 50 ms. Forwarding
// never depends on the agent: no ping is lost; node1's kernel keeps its
// routes while the agent is down and, after the restart, holds the same
// set without any of them having been deleted or rewritten; node2 keeps
// node1's block throughout (graceful restart helper).
func TestAgentKilledUnderPing(t *testing.T) {
	l := up(t, lab.Options{Topology: lab.TopologyMesh, Nodes: 2, PodsPerNode: 1})
	ctx := testCtx(t, 3*time.Minute)
	node1, node2 := l.Nodes[0], l.Nodes[1]
	pod1, pod2 := l.Pods[0], l.Pods[1]
	before, err := node1.NS.Routes(lab.RouteProtocol)
	if err != nil {
		t.Fatal(err)
	}
	w1, err := node1.NS.WatchRoutes(lab.RouteProtocol, true)
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Close()
	w2, err := node2.NS.WatchRoutes(lab.RouteProtocol, true)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()

	const count = 300 // 15 s at 50 ms
	ping := exec.CommandContext(ctx, "ip", "netns", "exec", pod1.NS.Name, "ping", "-i", "0.05", "-c", strconv.Itoa(count), "-W", "2", pod2.IP.String())
	var out strings.Builder
	ping.Stdout, ping.Stderr = &out, &out
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	pingDone := make(chan error, 1)
	go func() { pingDone <- ping.Wait() }()
	time.Sleep(2 * time.Second)

	if err := node1.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Log("calico-node of node1 killed")
	time.Sleep(3 * time.Second)
	if err := node1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := node1.WaitEstablished(ctx, 2*time.Minute, node2.IP); err != nil {
		t.Fatal(err)
	}
	if err := node1.WaitReady(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitRoutes(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Log("calico-node of node1 is back")
	select {
	case err := <-pingDone:
		if err != nil {
			t.Errorf("ping: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("ping did not finish")
	}
	sent, received := pingCounts(out.String())
	t.Logf("ping through the restart: %d sent, %d received", sent, received)
	if sent != count || received != sent {
		t.Errorf("packets lost while the agent restarted: %d sent, %d received\n%s", sent, received, lastLines(out.String(), 5))
	}

	after, err := node1.NS.Routes(lab.RouteProtocol)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(routeStrings(before), routeStrings(after)) {
		t.Errorf("node1's routes changed across the restart:\nbefore:\n  %s\nafter:\n  %s",
			strings.Join(routeStrings(before), "\n  "), strings.Join(routeStrings(after), "\n  "))
	}
	existing := map[netip.Prefix]bool{}
	for _, r := range before {
		existing[r.Dst] = true
	}
	for _, ev := range w1.Events() {
		if existing[ev.Dst] {
			t.Errorf("node1: route %s was %s during the restart (at %s): it must be left alone", ev.Dst, verb(ev), ev.At.Format("15:04:05.000"))
		}
	}
	node1Blocks := blocksOf(ctx, t, l, node1.Name)
	for _, ev := range w2.Events() {
		if slices.Contains(node1Blocks, ev.Dst) && ev.Deleted {
			t.Errorf("node2 deleted its route to node1's block %s during node1's restart (at %s)", ev.Dst, ev.At.Format("15:04:05.000"))
		}
	}
	if lost := w1.Lost(); lost != nil {
		t.Errorf("route notifications of node1 were lost (%v): the no-rewrite check is incomplete", lost)
	}
	// The watch was live all along: a new pod's route shows up in it.
	p, err := l.AddPod(ctx, node1, "node1-after-restart")
	if err != nil {
		t.Fatal(err)
	}
	err = waitUntil(ctx, 30*time.Second, func() error {
		for _, ev := range w1.Events() {
			if !ev.Deleted && ev.Dst == netip.PrefixFrom(p.IP, 32) {
				return nil
			}
		}
		return fmt.Errorf("the route watch of node1 did not see the new pod's route %s", p.IP)
	})
	if err != nil {
		t.Error(err)
	}
}

func verb(ev lab.RouteEvent) string {
	if ev.Deleted {
		return "deleted"
	}
	return "written again"
}

func routeStrings(rs []lab.KernelRoute) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.String()
	}
	slices.Sort(out)
	return out
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) (?:packets )?received`)

func pingCounts(out string) (sent, received int) {
	m := pingSummary.FindStringSubmatch(out)
	if m == nil {
		return -1, -1
	}
	sent, _ = strconv.Atoi(m[1])
	received, _ = strconv.Atoi(m[2])
	return sent, received
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitUntil retries check every 100 ms until it passes or limit.
func waitUntil(ctx context.Context, limit time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
