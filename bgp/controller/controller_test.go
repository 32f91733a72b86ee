package controller

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/bgp"
	"github.com/tabbynet/tabby/bgp/gobgp"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
)

const settle = 30 * time.Second

func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(settle)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, settle, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func create(t *testing.T, ds datastore.Interface, r v3.Resource) {
	t.Helper()
	if _, err := ds.Create(context.Background(), r); err != nil {
		t.Fatalf("create %s: %v", v3.Describe(r), err)
	}
}

// consumer plays Felix: it applies the relayed deltas to a map.
type consumer struct {
	c      *Controller
	routes map[netip.Prefix]netip.Addr
	// withdrawn counts withdrawals per prefix, to prove some never happen.
	withdrawn map[netip.Prefix]int
}

func (f *consumer) drain() {
	changed, withdrawn := f.c.TakeRouteChanges()
	for _, p := range withdrawn {
		delete(f.routes, p)
		f.withdrawn[p]++
	}
	for _, r := range changed {
		f.routes[r.Prefix] = r.NextHop
	}
}

func wantView(f *consumer, want string) func() string {
	return func() string {
		if got := f.view(); got != want {
			return fmt.Sprintf("consumer has %q, want %q", got, want)
		}
		return ""
	}
}

func (f *consumer) view() string {
	f.drain()
	var out []string
	for p, nh := range f.routes {
		out = append(out, p.String()+" via "+nh.String())
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// Two controllers on one embedded etcd: the speakers come up from Node,
// BGPConfiguration, IPPool and BlockAffinity resources, exchange blocks,
// relay them to their consumer, report status; an AS change restarts both
// speakers without the consumer ever seeing a withdrawal.
func TestControllersFromDatastore(t *testing.T) {
	ds := etcdtest.NewStore(t)
	ctx := context.Background()
	a, b := byte(100+rand.IntN(150)), byte(rand.IntN(256))
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, a, b, byte(i)}) }
	ln, err := net.Listen("tcp", addr(1).String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	pwFile := filepath.Join(t.TempDir(), "mesh-password")
	if err := os.WriteFile(pwFile, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// bindMode NodeIP: both "nodes" live in this process, each must listen
	// on its own address only.
	nodeIP := "NodeIP"
	create(t, ds, &v3.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v3.BGPConfigurationSpec{
		ListenPort: uint16(port), NodeMeshPassword: &v3.BGPPassword{File: pwFile}, BindMode: &nodeIP,
	}})
	create(t, ds, &v3.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "pool"}, Spec: v3.IPPoolSpec{CIDR: "10.65.0.0/16"}})
	for i := 1; i <= 2; i++ {
		create(t, ds, &v3.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("n%d", i)}, Spec: v3.NodeSpec{BGP: &v3.NodeBGPSpec{IPv4Address: addr(i).String() + "/8"}}})
		create(t, ds, &v3.BlockAffinity{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("n%d-10-65-%d-0-26", i, i)}, Spec: v3.BlockAffinitySpec{
			Node: fmt.Sprintf("n%d", i), CIDR: fmt.Sprintf("10.65.%d.0/26", i), State: v3.AffinityStateConfirmed, Type: "host",
		}})
	}

	logs := etcdtest.Logger(t)
	var cs []*Controller
	var fs []*consumer
	for i := 1; i <= 2; i++ {
		log := logs.With("node", fmt.Sprintf("n%d", i))
		c := New(Config{
			NodeName: fmt.Sprintf("n%d", i), Datastore: ds, Log: log,
			InitialSyncTimeout: 20 * time.Second,
			NewSpeaker: func() bgp.Speaker {
				return gobgp.New(gobgp.Options{Logger: log, ConnectRetry: time.Second, IdleHoldTime: time.Second, GoBGPLogLevel: slog.LevelWarn})
			},
		})
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(runCtx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
		cs = append(cs, c)
		fs = append(fs, &consumer{c: c, routes: map[netip.Prefix]netip.Addr{}, withdrawn: map[netip.Prefix]int{}})
	}

	eventually(t, "n1 relays n2's block", wantView(fs[0], "10.65.2.0/26 via "+addr(2).String()))
	eventually(t, "n2 relays n1's block", wantView(fs[1], "10.65.1.0/26 via "+addr(1).String()))
	select {
	case <-cs[0].Synced():
	case <-time.After(settle):
		t.Fatal("n1 never synced")
	}
	eventually(t, "status", func() string {
		ps := cs[0].Peers(ctx)
		if len(ps) != 1 || ps[0].State != "Established" || ps[0].Type != "node-to-node mesh" || ps[0].Info != "Established" ||
			ps[0].RoutesReceived != 1 || ps[0].RoutesAccepted != 1 || ps[0].RoutesAdvertised != 1 || ps[0].SinceUnix == 0 {
			return fmt.Sprint(ps)
		}
		if ready, detail := cs[0].Ready(ctx); !ready {
			return detail
		}
		return ""
	})

	// A node joins: n1 gets a mesh session to it (down: nothing runs
	// there); it leaves: the session goes.
	create(t, ds, &v3.Node{ObjectMeta: metav1.ObjectMeta{Name: "n3"}, Spec: v3.NodeSpec{BGP: &v3.NodeBGPSpec{IPv4Address: addr(3).String() + "/8"}}})
	eventually(t, "session to the new node", func() string {
		ps := cs[0].Peers(ctx)
		if len(ps) != 2 || ps[1].Address != addr(3).String() || ps[1].Type != "node-to-node mesh" || ps[1].State == "Established" {
			return fmt.Sprint(ps)
		}
		return ""
	})
	if _, err := ds.Delete(ctx, v3.Key{Kind: "Node", Name: "n3"}, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "session to the departed node removed", func() string {
		if ps := cs[0].Peers(ctx); len(ps) != 1 || ps[0].Address != addr(2).String() {
			return fmt.Sprint(ps)
		}
		return ""
	})

	// A new AS for the whole cluster: both speakers restart with it.
	cfg, err := ds.Get(ctx, v3.Key{Kind: "BGPConfiguration", Name: "default"})
	if err != nil {
		t.Fatal(err)
	}
	as := v3.ASNumber(65010)
	cfg.(*v3.BGPConfiguration).Spec.ASNumber = &as
	if _, err := ds.Update(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	eventually(t, "sessions back up in AS 65010", func() string {
		for i, c := range cs {
			ps := c.Peers(ctx)
			if len(ps) != 1 || ps[0].State != "Established" || ps[0].Asn != 65010 || ps[0].RoutesReceived != 1 {
				return fmt.Sprintf("n%d: %v", i+1, ps)
			}
		}
		return ""
	})
	if fs[0].view() != "10.65.2.0/26 via "+addr(2).String() || fs[0].withdrawn[netip.MustParsePrefix("10.65.2.0/26")] != 0 {
		t.Fatalf("n1's consumer after the restart: %s, withdrawals %v", fs[0].view(), fs[0].withdrawn)
	}

	// n2's block goes away: n1's consumer is told.
	if _, err := ds.Delete(ctx, v3.Key{Kind: "BlockAffinity", Name: "n2-10-65-2-0-26"}, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "withdrawal relayed", wantView(fs[0], ""))
}

func TestInfo(t *testing.T) {
	for _, tc := range []struct {
		p    bgp.PeerStatus
		want string
	}{
		{bgp.PeerStatus{State: bgp.StateEstablished, LastError: "old"}, "Established"},
		{bgp.PeerStatus{State: bgp.StateActive, LastError: "Socket: Connection refused"}, "Active Socket: Connection refused"},
		{bgp.PeerStatus{State: bgp.StateActive, Passive: true}, "Passive"},
		{bgp.PeerStatus{State: bgp.StateIdle, LastError: "read password file: x"}, "Idle read password file: x"},
		{bgp.PeerStatus{State: bgp.StateOpenSent}, "OpenSent"},
	} {
		if got := Info(tc.p); got != tc.want {
			t.Errorf("Info(%+v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestReadPassword(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "pw")
	if err := os.WriteFile(good, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pw      v3.BGPPassword
		want    string
		wantErr string
	}{
		{pw: v3.BGPPassword{Value: "inline"}, want: "inline"},
		{pw: v3.BGPPassword{File: good}, want: "s3cret"},
		{pw: v3.BGPPassword{File: filepath.Join(dir, "missing")}, wantErr: "no such file"},
		{pw: v3.BGPPassword{File: empty}, wantErr: "is empty"},
		{pw: v3.BGPPassword{SecretKeyRef: &v3.SecretKeySelector{Name: "s", Key: "k"}}, wantErr: "needs the Kubernetes datastore"},
	} {
		got, err := ReadPassword(&tc.pw)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ReadPassword(%+v) = %q, %v; want error containing %q", tc.pw, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ReadPassword(%+v) = %q, %v; want %q", tc.pw, got, err, tc.want)
		}
	}
}
