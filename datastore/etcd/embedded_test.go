package etcd_test

import (
	"context"
	"log/slog"
	"net/url"
	"path/filepath"
	"testing"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
)

func TestEmbeddedInstancesAreIndependent(t *testing.T) {
	t.Parallel()
	a, b := etcdtest.Start(t), etcdtest.Start(t)
	if a.Endpoints()[0] == b.Endpoints()[0] {
		t.Fatalf("two servers share endpoint %s", a.Endpoints()[0])
	}
	for _, ep := range append(a.Endpoints(), b.Endpoints()...) {
		u, err := url.Parse(ep)
		if err != nil || u.Hostname() != "127.0.0.1" {
			t.Errorf("endpoint %s is not on loopback", ep)
		}
	}
	sa, sb := etcdtest.Connect(t, a.Endpoints()...), etcdtest.Connect(t, b.Endpoints()...)
	ctx := context.Background()
	if _, err := sa.Create(ctx, pool("only-in-a", "10.0.0.0/24")); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Get(ctx, v3.Key{Kind: "IPPool", Name: "only-in-a"}); !datastore.IsNotFound(err) {
		t.Errorf("b sees a's data: %v", err)
	}
}

func TestEmbeddedRestartKeepsData(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "etcd")
	log := etcdtest.Logger(t)
	ctx := context.Background()

	e, err := etcd.StartEmbedded(ctx, dir, log)
	if err != nil {
		t.Fatal(err)
	}
	s, err := etcd.New(datastore.EtcdConfig{Endpoints: e.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	created, err := s.Create(ctx, pool("p", "10.0.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}

	e2, err := etcd.StartEmbedded(ctx, dir, log)
	if err != nil {
		t.Fatalf("restart on the same data: %v", err)
	}
	t.Cleanup(func() { e2.Close() })
	s2 := etcdtest.Connect(t, e2.Endpoints()...)
	got, err := s2.Get(ctx, v3.Key{Kind: "IPPool", Name: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetUID() != created.GetUID() || got.GetResourceVersion() != created.GetResourceVersion() {
		t.Errorf("after restart: %+v, want %+v", got, created)
	}
}

func TestEmbeddedFixedClientAddress(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	if _, err := etcd.StartEmbedded(context.Background(), t.TempDir(), log, etcd.WithClientAddress("192.0.2.1:2379")); err == nil {
		t.Error("a non-loopback client address was accepted")
	}
	addr := closedPort(t)
	e, err := etcd.StartEmbedded(context.Background(), t.TempDir(), log, etcd.WithClientAddress(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := e.Endpoints(); len(got) != 1 || got[0] != "http://"+addr {
		t.Errorf("endpoints = %v, want http://%s", got, addr)
	}
}

func TestEmbeddedStartHonoursContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if e, err := etcd.StartEmbedded(ctx, t.TempDir(), slog.New(slog.DiscardHandler)); err == nil {
		e.Close()
		t.Error("start with a cancelled context succeeded")
	}
}
