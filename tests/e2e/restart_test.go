package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/tabbynet/tabby/tests/e2e/cnilab"
)

// pingLoop pings dst from inside a pod, ten packets a second, until stop.
// It runs ping in one-second rounds (-c 10) rather than one endless ping
// stopped by a signal: a ping interrupted with a reply in flight counts
// that packet as lost.
type pingLoop struct {
	stopc chan struct{}
	done  chan struct{}

	mu             sync.Mutex
	sent, received int
	errs           []string
}

func startPingLoop(t *testing.T, from *cnilab.Pod, dst net.IP) *pingLoop {
	t.Helper()
	p := &pingLoop{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stopc:
				return
			default:
			}
			out, err := exec.Command("ip", "netns", "exec", filepath.Base(from.NSPath),
				"ping", "-n", "-q", "-c", "10", "-i", "0.1", "-W", "1", dst.String()).CombinedOutput()
			m := pingSummary.FindStringSubmatch(string(out))
			p.mu.Lock()
			if m == nil {
				p.errs = append(p.errs, fmt.Sprintf("%v: %s", err, out))
			} else {
				s, _ := strconv.Atoi(m[1])
				r, _ := strconv.Atoi(m[2])
				p.sent += s
				p.received += r
			}
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() { p.halt() })
	return p
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

func (p *pingLoop) halt() {
	select {
	case <-p.stopc:
	default:
		close(p.stopc)
	}
	<-p.done
}

// stop ends the loop after its current round and reports the totals.
func (p *pingLoop) stop(t *testing.T) (sent, received int) {
	t.Helper()
	p.halt()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.errs) > 0 {
		t.Errorf("ping rounds without a summary: %q", p.errs)
	}
	return p.sent, p.received
}

// delUntilDone is what containerd does after a failed ADD or DEL: retry DEL
// until it succeeds.
func delUntilDone(rt *cnilab.Runtime, list *libcni.NetworkConfigList, p *cnilab.Pod, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		err := rt.Del(list, p)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAgentKilledDuringChurn SIGKILLs calico-node in the middle of 100
// ADD/DEL cycles and restarts it a second later. Pods added before keep
// their traffic the whole time (ping loops lose nothing); every ADD or DEL
// that meets the dead agent fails with "try again later" and a message
// naming the socket; once the DELs that failed are retried, the IPAM check
// finds no leak and no endpoint or veth of a deleted pod remains.
func TestAgentKilledDuringChurn(t *testing.T) {
	const cycles = 100
	const killAt = 30
	lab := cnilab.New(t)
	node := lab.AddNode(cnilab.NodeOptions{})
	rt := node.Runtime(t)
	list := cnilab.ConfList(t, node.CalicoConf(nil))

	a, b := cnilab.NewPod(t, "steady-a"), cnilab.NewPod(t, "steady-b")
	_, ipA := add(t, rt, list, a)
	_, ipB := add(t, rt, list, b)
	if err := cnilab.Ping(a, ipB, 3); err != nil {
		t.Fatalf("steady pods cannot reach each other before the churn: %v", err)
	}
	loopAB := startPingLoop(t, a, ipB)
	loopBNode := startPingLoop(t, b, node.IP)

	// The kill happens on its own goroutine, while the cycles go on.
	startKill := make(chan struct{})
	restarted := make(chan error, 1)
	go func() {
		<-startKill
		time.Sleep(30 * time.Millisecond) // inside that cycle's ADD
		node.Kill(t)
		time.Sleep(time.Second)
		restarted <- node.StartNoWait()
	}()

	var addFailed, delFailed int
	var pending []*cnilab.Pod // DELs to retry once the agent is back
	var churned []*cnilab.Pod
	for i := range cycles {
		if i == killAt {
			close(startKill)
		}
		p := cnilab.NewPod(t, fmt.Sprintf("churn-%03d", i))
		churned = append(churned, p)
		if _, err := rt.Add(list, p); err != nil {
			addFailed++
			// Unreachable, or reached while it was still starting: either
			// way "try again later", naming the agent.
			cniErr(t, "ADD "+p.Name+" around the agent's death", err, types.ErrTryAgainLater, "calico-node agent")
		}
		// containerd DELs after a failed ADD too.
		if err := rt.Del(list, p); err != nil {
			delFailed++
			cniErr(t, "DEL "+p.Name+" around the agent's death", err, types.ErrTryAgainLater, "calico-node agent")
			pending = append(pending, p)
		}
		if len(pending) > 0 && pending[len(pending)-1] == p {
			time.Sleep(100 * time.Millisecond) // back off, as kubelet does
		}
	}
	if err := <-restarted; err != nil {
		t.Fatalf("restart calico-node: %v", err)
	}
	node.WaitReady(t, 60*time.Second)
	t.Logf("%d cycles: %d ADDs and %d DELs met the dead agent", cycles, addFailed, delFailed)
	if addFailed == 0 {
		t.Errorf("no ADD met the dead agent: the kill did not land inside the churn")
	}
	for _, p := range pending {
		if err := delUntilDone(rt, list, p, 60*time.Second); err != nil {
			t.Fatalf("DEL %s after the restart: %v\ncalico-node log:\n%s", p.Name, err, node.LogTail(30))
		}
	}

	// Traffic of the steady pods across the whole churn and the restart.
	if err := cnilab.Ping(a, ipB, 3); err != nil {
		t.Errorf("steady pods lost connectivity after the restart: %v", err)
	}
	for name, loop := range map[string]*pingLoop{"steady-a -> steady-b": loopAB, "steady-b -> node": loopBNode} {
		sent, recv := loop.stop(t)
		t.Logf("%s: %d sent, %d received", name, sent, recv)
		if sent == 0 || recv != sent {
			t.Errorf("%s lost %d of %d pings during the churn and the agent's restart", name, sent-recv, sent)
		}
	}

	for _, p := range churned {
		assertNothingLeft(t, node, p, vethOf(p))
	}
	if weps := lab.WorkloadEndpoints(t, ""); len(weps) != 2 {
		var names []string
		for _, w := range weps {
			names = append(names, w.Name)
		}
		t.Errorf("endpoints after the churn: %v, want only the two steady pods", names)
	}
	if links := node.Links(t, "cali"); len(links) != 2 {
		t.Errorf("host veths after the churn: %v, want only the two steady pods'", keys(links))
	}
	if err := rt.Check(list, a); err != nil {
		t.Errorf("CHECK of a steady pod after the restart: %v", err)
	}
	del(t, rt, list, a)
	del(t, rt, list, b)
	assertNothingLeft(t, node, a, vethOf(a), ipA)
	assertNothingLeft(t, node, b, vethOf(b), ipB)
	assertIPAMClean(t, lab)
	assertCalicoctlIPAMCheckClean(t, lab)
}

// assertCalicoctlIPAMCheckClean runs the built `calicoctl ipam check`
// against the lab's etcd, as an operator would, and asserts it reports no
// leak and no other problem.
func assertCalicoctlIPAMCheckClean(t *testing.T, lab *cnilab.Lab) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(lab.Bin, "calicoctl"), "ipam", "check", "--show-problem-ips")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS=" + strings.Join(lab.EtcdEndpoints, ",")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("calicoctl ipam check: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Found 0 IPs that are allocated in IPAM but not actually in use.\n",
		"Check complete; found 0 problems.\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("calicoctl ipam check output lacks %q:\n%s", want, out)
		}
	}
}
