package ipamcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
	"github.com/tabbynet/tabby/ipam"
)

// keepOpen lets every command run "close" the shared test store; the test
// closes it at the end.
type keepOpen struct{ datastore.Interface }

func (keepOpen) Close() error { return nil }

type env struct {
	t  *testing.T
	ds datastore.Interface
	m  *ipam.IPAM
}

func newEnv(t *testing.T) *env {
	ds := etcdtest.NewStore(t)
	return &env{t: t, ds: ds, m: ipam.New(ds, etcdtest.Logger(t))}
}

// run executes `ipam args...` and returns stdout, stderr and the error.
func (e *env) run(args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	cmd := NewCommand(func() (datastore.Interface, error) { return keepOpen{e.ds}, nil }, &out, &errOut)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func (e *env) mustRun(args ...string) string {
	e.t.Helper()
	out, stderr, err := e.run(args...)
	if err != nil {
		e.t.Fatalf("ipam %v: %v\nstderr: %s", args, err, stderr)
	}
	return out
}

func (e *env) pool(name, cidr string) {
	p := &v3.IPPool{}
	p.Name, p.Spec.CIDR = name, cidr
	if _, err := e.ds.Create(context.Background(), p); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) assign(node, handle string, n int) []netip.Prefix {
	e.t.Helper()
	v4, _, err := e.m.AutoAssign(context.Background(), ipam.AssignArgs{Num4: n, HandleID: handle, Node: node,
		Attrs: map[string]string{ipam.AttributeNamespace: "default", ipam.AttributePod: "pod-" + handle, ipam.AttributeTimestamp: "t0"}})
	if err != nil {
		e.t.Fatal(err)
	}
	return v4
}

func TestShowTable(t *testing.T) {
	e := newEnv(t)
	e.pool("default-ipv4-ippool", "10.0.0.0/24")
	e.assign("n1", "k8s-pod-network.a", 3)
	want := `+----------+-------------+-----------+------------+-----------+
| GROUPING |    CIDR     | IPS TOTAL | IPS IN USE | IPS FREE  |
+----------+-------------+-----------+------------+-----------+
| IP Pool  | 10.0.0.0/24 |       256 | 3 (1%)     | 253 (99%) |
+----------+-------------+-----------+------------+-----------+
`
	if got := e.mustRun("show"); got != want {
		t.Errorf("show:\n%s\nwant:\n%s", got, want)
	}
	want = `+----------+-------------+-----------+------------+-----------+
| GROUPING |    CIDR     | IPS TOTAL | IPS IN USE | IPS FREE  |
+----------+-------------+-----------+------------+-----------+
| IP Pool  | 10.0.0.0/24 |       256 | 3 (1%)     | 253 (99%) |
| Block    | 10.0.0.0/26 |        64 | 3 (5%)     | 61 (95%)  |
+----------+-------------+-----------+------------+-----------+
`
	if got := e.mustRun("show", "--show-blocks"); got != want {
		t.Errorf("show --show-blocks:\n%s\nwant:\n%s", got, want)
	}
}

func TestShowIP(t *testing.T) {
	e := newEnv(t)
	e.pool("p", "10.0.0.0/24")
	e.assign("n1", "k8s-pod-network.a", 1)
	want := `IP 10.0.0.0 is in use
Handle ID: k8s-pod-network.a
Block: 10.0.0.0/26 (affinity: n1)
Attributes:
  namespace: default
  node: n1
  pod: pod-k8s-pod-network.a
  timestamp: t0
`
	if got := e.mustRun("show", "--ip", "10.0.0.0"); got != want {
		t.Errorf("show --ip:\n%s\nwant:\n%s", got, want)
	}
	if got := e.mustRun("show", "--ip=10.0.0.5"); got != "10.0.0.5 is not assigned\n" {
		t.Errorf("unassigned: %q", got)
	}
	if _, _, err := e.run("show", "--ip", "10.0.0.500"); err == nil {
		t.Error("an invalid address must fail")
	}
}

func TestConfigure(t *testing.T) {
	e := newEnv(t)
	out := e.mustRun("configure", "--strictaffinity=true", "--max-blocks-per-host", "3")
	if out != "Successfully set StrictAffinity to: true\nSuccessfully set MaxBlocksPerHost to: 3\n" {
		t.Errorf("configure printed %q", out)
	}
	cfg, err := e.m.GetConfig(context.Background())
	if err != nil || cfg != (ipam.Config{StrictAffinity: true, MaxBlocksPerHost: 3, AutoAllocateBlocks: true}) {
		t.Fatalf("config = %+v, %v", cfg, err)
	}
	// Only what is given changes.
	e.mustRun("configure", "--strictaffinity=false")
	if cfg, _ := e.m.GetConfig(context.Background()); cfg.StrictAffinity || cfg.MaxBlocksPerHost != 3 {
		t.Fatalf("config = %+v", cfg)
	}
	if !strings.Contains(e.mustRun("show", "--show-configuration"), "| MaxBlocksPerHost   |     3 |") {
		t.Errorf("show --show-configuration does not show the value")
	}
	if _, _, err := e.run("configure"); err == nil || !strings.Contains(err.Error(), "at least one") {
		t.Errorf("configure without options: %v", err)
	}
	if _, _, err := e.run("configure", "--strictaffinity=maybe"); err == nil {
		t.Error("a non-boolean strictaffinity must fail")
	}
}

func TestReleaseIP(t *testing.T) {
	e := newEnv(t)
	e.pool("p", "10.0.0.0/24")
	ip := e.assign("n1", "h", 1)[0].Addr()
	if out := e.mustRun("release", "--ip", ip.String()); out != "Successfully released IP address 10.0.0.0\n" {
		t.Errorf("release printed %q", out)
	}
	if _, err := e.m.AllocationInfo(context.Background(), ip); err == nil {
		t.Fatal("address still allocated")
	}
	if _, _, err := e.run("release", "--ip", ip.String()); err == nil || err.Error() != "IP address 10.0.0.0 is not assigned" {
		t.Errorf("second release: %v", err)
	}
	if _, _, err := e.run("release"); err == nil {
		t.Error("release without --ip or --from-report must fail")
	}
}

func TestCheckReportAndReleaseFromReport(t *testing.T) {
	e := newEnv(t)
	e.pool("p", "10.0.0.0/24")
	n := &v3.Node{}
	n.Name = "n1"
	if _, err := e.ds.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	used := e.assign("n1", "k8s-pod-network.used", 1)[0].Addr()
	leaked := e.assign("n1", "k8s-pod-network.gone", 1)[0].Addr()
	w := &v3.WorkloadEndpoint{}
	w.Namespace, w.Name = "default", "n1-k8s-pod--used-eth0"
	w.Spec = v3.WorkloadEndpointSpec{Node: "n1", Pod: "pod-used", ContainerID: "used", IPNetworks: []string{used.String() + "/32"}}
	if _, err := e.ds.Create(context.Background(), w); err != nil {
		t.Fatal(err)
	}

	report := filepath.Join(t.TempDir(), "report.json")
	out := e.mustRun("check", "-o", report, "--show-problem-ips")
	for _, want := range []string{
		"Found 1 IPAM blocks.\n IPAM block 10.0.0.0/26 affinity=host:n1:\n",
		"IPAM blocks record 2 allocations.\n",
		"  10.0.0.1 leaked; attrs Main:k8s-pod-network.gone Extra:namespace=default,node=n1,pod=pod-k8s-pod-network.gone,timestamp=t0\n",
		"Found 1 IPs that are allocated in IPAM but not actually in use.\n",
		"Check complete; found 1 problems.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "generatedAt", "allocations", "missing", "orphanedBlocks", "orphanedAffinities", "leakedHandles", "missingHandles", "handleMismatches"} {
		if _, ok := r[k]; !ok {
			t.Errorf("report lacks field %q", k)
		}
	}

	out = e.mustRun("release", "--from-report", report)
	if !strings.Contains(out, "Releasing 1 old IPs...\nReleased 1 IPs successfully\n") {
		t.Errorf("release output:\n%s", out)
	}
	if _, err := e.m.AllocationInfo(context.Background(), leaked); err == nil {
		t.Error("leaked address still allocated")
	}
	if _, err := e.m.AllocationInfo(context.Background(), used); err != nil {
		t.Errorf("used address was released: %v", err)
	}
	if _, _, err := e.run("release", "--from-report", filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing report must fail")
	}
}

// A leaked address allocated just before the report (its pod's ADD may not
// have written the endpoint yet) is kept unless --force is given.
func TestReleaseFromReportKeepsYoungAllocationsUnlessForced(t *testing.T) {
	e := newEnv(t)
	e.pool("p", "10.0.0.0/24")
	v4, _, err := e.m.AutoAssign(context.Background(), ipam.AssignArgs{Num4: 1, HandleID: "k8s-pod-network.starting", Node: "n1",
		Attrs: map[string]string{ipam.AttributeNamespace: "default", ipam.AttributePod: "starting"}}) // timestamp: now
	if err != nil {
		t.Fatal(err)
	}
	young := v4[0].Addr()
	report := filepath.Join(t.TempDir(), "report.json")
	e.mustRun("check", "-o", report)

	out := e.mustRun("release", "--from-report", report)
	if !strings.Contains(out, "Released 0 IPs successfully\n") || !strings.Contains(out, "1 addresses were allocated less than 1m0s before the report and were kept") {
		t.Errorf("release output:\n%s", out)
	}
	if _, err := e.m.AllocationInfo(context.Background(), young); err != nil {
		t.Errorf("a young allocation was released without --force: %v", err)
	}
	out = e.mustRun("release", "--from-report", report, "--force")
	if !strings.Contains(out, "Released 1 IPs successfully\n") {
		t.Errorf("forced release output:\n%s", out)
	}
	if _, err := e.m.AllocationInfo(context.Background(), young); err == nil {
		t.Error("--force did not release the young allocation")
	}
}
