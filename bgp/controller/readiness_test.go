package controller

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/bgp"
	"github.com/tabbynet/tabby/bgp/gobgp"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
)

// readinessLog records what WatchReadiness reported, and when.
type readinessLog struct {
	mu      sync.Mutex
	reports []readinessReport
}

type readinessReport struct {
	at     time.Time
	ready  bool
	detail string
}

func (l *readinessLog) report(ready bool, detail string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reports = append(l.reports, readinessReport{time.Now(), ready, detail})
}

func (l *readinessLog) last() (readinessReport, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.reports) == 0 {
		return readinessReport{}, 0
	}
	return l.reports[len(l.reports)-1], len(l.reports)
}

// Readiness follows the sessions and the end of the start-up grace as they
// happen, with a safety-net interval far longer than the test: every
// change below can only have come from an event. n1 meshes with n2 (run
// here) and n3 (never runs): within the grace both must be up, so n1 is
// not ready; once the grace is over, n2 alone is enough; when n2 goes, n1
// is not ready again.
func TestWatchReadinessFollowsSessions(t *testing.T) {
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
	nodeIP := "NodeIP"
	create(t, ds, &v3.BGPConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v3.BGPConfigurationSpec{ListenPort: uint16(port), BindMode: &nodeIP}})
	create(t, ds, &v3.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "pool"}, Spec: v3.IPPoolSpec{CIDR: "10.65.0.0/16"}})
	for i := 1; i <= 3; i++ {
		create(t, ds, &v3.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("n%d", i)}, Spec: v3.NodeSpec{BGP: &v3.NodeBGPSpec{IPv4Address: addr(i).String() + "/8"}}})
	}

	const grace = 4 * time.Second
	logs := etcdtest.Logger(t)
	run := func(i int) (*Controller, context.CancelFunc) {
		log := logs.With("node", fmt.Sprintf("n%d", i))
		c := New(Config{
			NodeName: fmt.Sprintf("n%d", i), Datastore: ds, Log: log, ReadinessGrace: grace,
			NewSpeaker: func() bgp.Speaker {
				return gobgp.New(gobgp.Options{Logger: log, ConnectRetry: time.Second, IdleHoldTime: time.Second, GoBGPLogLevel: slog.LevelWarn})
			},
		})
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(runCtx) }()
		stop := func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run of n%d: %v", i, err)
			}
		}
		t.Cleanup(func() {
			select {
			case <-runCtx.Done():
			default:
				stop()
			}
		})
		return c, stop
	}

	n1, _ := run(1)
	var got readinessLog
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		n1.WatchReadiness(watchCtx, time.Hour, got.report)
	}()
	t.Cleanup(func() { stopWatch(); <-watchDone })

	// The speaker starts: not ready, both peers named.
	eventually(t, "n1 reports its speaker's peers", func() string {
		r, n := got.last()
		if n == 0 || r.ready || !strings.Contains(r.detail, addr(2).String()) || !strings.Contains(r.detail, addr(3).String()) {
			return fmt.Sprintf("last report %+v", r)
		}
		return ""
	})
	_, stopN2 := run(2)
	// n2 comes up: ready once the grace is over (at once if it came up
	// after), never before.
	eventually(t, "n1 ready with n2 up", func() string {
		if r, _ := got.last(); !r.ready {
			return fmt.Sprintf("last report %+v", r)
		}
		return ""
	})
	n1.mu.Lock()
	started := n1.started
	n1.mu.Unlock()
	got.mu.Lock()
	for _, r := range got.reports {
		if r.ready && r.at.Before(started.Add(grace)) {
			t.Errorf("ready reported %s after the speaker started, within the %s grace while n3 is down: %+v", r.at.Sub(started), grace, r)
		}
	}
	got.mu.Unlock()
	if r, _ := got.last(); r.detail != "BGP not established with "+addr(3).String() {
		t.Errorf("detail once ready: %q", r.detail)
	}

	// n2 goes: no peer up, not ready again.
	stopN2()
	eventually(t, "n1 not ready with n2 gone", func() string {
		r, _ := got.last()
		if r.ready || !strings.Contains(r.detail, addr(2).String()) {
			return fmt.Sprintf("last report %+v", r)
		}
		return ""
	})
}
