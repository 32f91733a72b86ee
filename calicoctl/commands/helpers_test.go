package commands_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tabbynet/tabby/calicoctl/commands"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
)

// harness runs calicoctl in-process against one embedded etcd.
type harness struct {
	t         *testing.T
	endpoints []string
	etcd      *clientv3.Client // raw access, for byte-for-byte snapshots
	env       map[string]string
	dir       string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	e := etcdtest.Start(t)
	store := etcdtest.Connect(t, e.Endpoints()...)
	return &harness{
		t:         t,
		endpoints: e.Endpoints(),
		etcd:      store.Client(),
		env:       map[string]string{"DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": strings.Join(e.Endpoints(), ",")},
		dir:       t.TempDir(),
	}
}

// result is one calicoctl run.
type result struct {
	stdout, stderr string
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("err=%v\n--- stdout ---\n%s--- stderr ---\n%s", r.err, r.stdout, r.stderr)
}

// run executes calicoctl with args; stdin feeds `-f -`.
func (h *harness) run(stdin string, args ...string) result {
	h.t.Helper()
	var out, errOut bytes.Buffer
	cli := commands.New(&out, &errOut, func(k string) string { return h.env[k] })
	// Never pick up a real /etc/calico/calicoctl.cfg on the test machine.
	cli.DefaultConfigPath = filepath.Join(h.dir, "no-such-calicoctl.cfg")
	cli.DatastoreTimeout = 3 * time.Second
	cli.Stdin = strings.NewReader(stdin)
	err := cli.Execute(args)
	return result{stdout: out.String(), stderr: errOut.String(), err: err}
}

// ok runs calicoctl and fails the test unless it succeeds.
func (h *harness) ok(args ...string) result {
	h.t.Helper()
	r := h.run("", args...)
	if r.err != nil {
		h.t.Fatalf("calicoctl %s failed:\n%s", strings.Join(args, " "), r)
	}
	return r
}

// file writes content to a new file in the harness's directory.
func (h *harness) file(name, content string) string {
	h.t.Helper()
	path := filepath.Join(h.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return path
}

// snapshot is every key and value in etcd and the store revision: any write
// at all changes it.
func (h *harness) snapshot() string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := h.etcd.Get(ctx, "\x00", clientv3.WithFromKey())
	if err != nil {
		h.t.Fatalf("snapshot etcd: %v", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "revision %d\n", resp.Header.Revision)
	for _, kv := range resp.Kvs {
		fmt.Fprintf(&b, "%s mod=%d\n%s\n", kv.Key, kv.ModRevision, kv.Value)
	}
	return b.String()
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}
