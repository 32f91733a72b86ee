package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

// holdStore can hold the next IPAMBlock update until the test releases it,
// so a test can line requests up behind a batch that is being written.
type holdStore struct {
	datastore.Interface

	mu      sync.Mutex
	armed   *hold
	updates int // IPAMBlock updates seen
}

type hold struct{ entered, release chan struct{} }

func newHoldStore(ds datastore.Interface) *holdStore { return &holdStore{Interface: ds} }

// holdNext arms a hold for the next IPAMBlock update.
func (h *holdStore) holdNext() *hold {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed = &hold{entered: make(chan struct{}), release: make(chan struct{})}
	return h.armed
}

func (h *holdStore) Update(ctx context.Context, r v3.Resource) (v3.Resource, error) {
	if _, ok := r.(*v3.IPAMBlock); ok {
		h.mu.Lock()
		h.updates++
		x := h.armed
		h.armed = nil
		h.mu.Unlock()
		if x != nil {
			close(x.entered)
			<-x.release
		}
	}
	return h.Interface.Update(ctx, r)
}

func (h *holdStore) blockUpdates() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.updates
}

// waitQueued waits until n requests of node wait for the next batch.
func waitQueued(t *testing.T, m *IPAM, node string, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		m.mu.Lock()
		q := 0
		if nq := m.queues[node]; nq != nil {
			q = len(nq.pending)
		}
		m.mu.Unlock()
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued for %s, want %d", q, node, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func result(t *testing.T, ch chan assignResult, name string) assignResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(time.Minute):
		t.Fatalf("%s did not return", name)
	}
	return assignResult{}
}

type assignResult struct {
	v4, v6 []netip.Prefix
	err    error
}

func assignAsync(m *IPAM, ctx context.Context, args AssignArgs) chan assignResult {
	ch := make(chan assignResult, 1)
	go func() {
		v4, v6, err := m.AutoAssign(ctx, args)
		ch <- assignResult{v4, v6, err}
	}()
	return ch
}

// Requests that queue while a block write is in flight are written
// together: one block write for all of them, each with its own handle and
// attributes, and no address twice.
func TestQueuedRequestsShareOneBlockWrite(t *testing.T) {
	ds := newStore(t)
	createPool(t, ds, "p", "10.0.0.0/24") // /26 blocks: 64 addresses
	hs := newHoldStore(ds)
	m := newIPAM(t, hs)
	assign(t, m, "n1", "k8s-pod-network.first", 1) // claims and caches the block
	before := hs.blockUpdates()

	x := hs.holdNext()
	lead := assignAsync(m, testCtx(t), AssignArgs{Num4: 1, HandleID: "k8s-pod-network.lead", Node: "n1"})
	<-x.entered
	const queued = 20
	var results []chan assignResult
	for i := range queued {
		results = append(results, assignAsync(m, testCtx(t), AssignArgs{Num4: 1, HandleID: fmt.Sprintf("k8s-pod-network.q%d", i), Node: "n1",
			Attrs: map[string]string{AttributeNamespace: "default", AttributePod: fmt.Sprintf("pod-%d", i)}}))
	}
	waitQueued(t, m, "n1", queued)
	close(x.release)

	seen := map[netip.Addr]int{}
	for i, ch := range append([]chan assignResult{lead}, results...) {
		r := result(t, ch, fmt.Sprint("request ", i))
		if r.err != nil || len(r.v4) != 1 {
			t.Fatalf("request %d: %v %v", i, r.v4, r.err)
		}
		if prev, dup := seen[r.v4[0].Addr()]; dup {
			t.Fatalf("%s handed out twice (requests %d and %d)", r.v4[0], prev, i)
		}
		seen[r.v4[0].Addr()] = i
	}
	// The held leader's write, then one write for the 20 queued requests.
	if got := hs.blockUpdates() - before; got != 2 {
		t.Errorf("%d block writes for 21 requests, want 2 (the queued ones in one)", got)
	}
	s := checkInvariants(t, m)
	if len(s.byAddr) != queued+2 {
		t.Fatalf("%d addresses allocated, want %d", len(s.byAddr), queued+2)
	}
	for i := range queued {
		a := s.byAddr[mustOne(t, s, fmt.Sprintf("k8s-pod-network.q%d", i))]
		if a.Attrs[AttributePod] != fmt.Sprintf("pod-%d", i) || a.Attrs[AttributeNode] != "n1" {
			t.Errorf("request %d: attributes %v", i, a.Attrs)
		}
	}
}

// mustOne returns the one address a handle holds.
func mustOne(t *testing.T, s snapshot, handle string) netip.Addr {
	t.Helper()
	var out []netip.Addr
	for a, al := range s.byAddr {
		if al.HandleID == handle {
			out = append(out, a)
		}
	}
	if len(out) != 1 {
		t.Fatalf("handle %s holds %v, want one address", handle, out)
	}
	return out[0]
}

// A batch mixes requests that can share a block write with ones that
// cannot (another family, a pool that does not exist, more addresses than
// fit): each gets what it would get alone.
func TestBatchOfDifferentRequests(t *testing.T) {
	ds := newStore(t)
	createPool(t, ds, "v4", "10.0.0.0/24")
	createPool(t, ds, "v6", "fd00::/120")
	hs := newHoldStore(ds)
	m := newIPAM(t, hs)
	assign(t, m, "n1", "k8s-pod-network.first", 1)
	x := hs.holdNext()
	lead := assignAsync(m, testCtx(t), AssignArgs{Num4: 1, HandleID: "k8s-pod-network.lead", Node: "n1"})
	<-x.entered
	plain := assignAsync(m, testCtx(t), AssignArgs{Num4: 1, HandleID: "k8s-pod-network.plain", Node: "n1"})
	dual := assignAsync(m, testCtx(t), AssignArgs{Num4: 1, Num6: 1, HandleID: "k8s-pod-network.dual", Node: "n1"})
	bad := assignAsync(m, testCtx(t), AssignArgs{Num4: 1, HandleID: "k8s-pod-network.bad", Node: "n1", IPv4Pools: []string{"nope"}})
	many := assignAsync(m, testCtx(t), AssignArgs{Num4: 100, HandleID: "k8s-pod-network.many", Node: "n1"})
	waitQueued(t, m, "n1", 4)
	close(x.release)

	for name, ch := range map[string]chan assignResult{"lead": lead, "plain": plain} {
		if r := result(t, ch, name); r.err != nil || len(r.v4) != 1 || len(r.v6) != 0 {
			t.Errorf("%s: %v %v %v", name, r.v4, r.v6, r.err)
		}
	}
	if r := result(t, dual, "dual"); r.err != nil || len(r.v4) != 1 || len(r.v6) != 1 {
		t.Errorf("dual: %v %v %v", r.v4, r.v6, r.err)
	}
	if r := result(t, bad, "bad"); !errors.Is(r.err, ErrPool) || len(r.v4) != 0 {
		t.Errorf("bad pool: %v %v, want ErrPool", r.v4, r.err)
	}
	if r := result(t, many, "many"); r.err != nil || len(r.v4) != 100 {
		t.Errorf("many: %d addresses, %v", len(r.v4), r.err)
	}
	s := checkInvariants(t, m)
	if len(s.byAddr) != 1+1+1+2+100 {
		t.Errorf("%d addresses allocated, want 105", len(s.byAddr))
	}
	if _, ok := s.byHandle["k8s-pod-network.bad"]; ok {
		t.Error("the failed request holds addresses")
	}
}

// A caller that gives up while its request waits for a batch gets an
// error and holds nothing; one that gives up while its batch is being
// written gets an error too, and what the batch took for it is released.
func TestQueuedCallerGivesUp(t *testing.T) {
	ds := newStore(t)
	createPool(t, ds, "p", "10.0.0.0/24")
	hs := newHoldStore(ds)
	m := newIPAM(t, hs)
	assign(t, m, "n1", "k8s-pod-network.first", 1)

	// Gives up while queued.
	x := hs.holdNext()
	leader := assignAsync(m, testCtx(t), AssignArgs{Num4: 1, HandleID: "k8s-pod-network.leader", Node: "n1"})
	<-x.entered
	keep := assignAsync(m, testCtx(t), AssignArgs{Num4: 1, HandleID: "k8s-pod-network.keep", Node: "n1"})
	waitQueued(t, m, "n1", 1)
	quitCtx, quit := context.WithCancel(context.Background())
	defer quit()
	quitter := assignAsync(m, quitCtx, AssignArgs{Num4: 1, HandleID: "k8s-pod-network.quitter", Node: "n1"})
	waitQueued(t, m, "n1", 2)
	quit()
	if r := result(t, quitter, "quitter"); !errors.Is(r.err, context.Canceled) || len(r.v4) != 0 {
		t.Errorf("quitter while queued: %v %v, want context.Canceled", r.v4, r.err)
	}
	close(x.release)
	for name, ch := range map[string]chan assignResult{"leader": leader, "keep": keep} {
		if r := result(t, ch, name); r.err != nil || len(r.v4) != 1 {
			t.Errorf("%s: %v %v", name, r.v4, r.err)
		}
	}

	// Gives up while its batch is being written: "other" leads the batch
	// {other, gone}, whose write is held while gone's caller gives up.
	x = hs.holdNext()
	first := assignAsync(m, testCtx(t), AssignArgs{Num4: 1, HandleID: "k8s-pod-network.first2", Node: "n1"})
	<-x.entered
	other := assignAsync(m, testCtx(t), AssignArgs{Num4: 1, HandleID: "k8s-pod-network.other", Node: "n1"})
	waitQueued(t, m, "n1", 1)
	goneCtx, abandon := context.WithCancel(context.Background())
	defer abandon()
	gone := assignAsync(m, goneCtx, AssignArgs{Num4: 1, HandleID: "k8s-pod-network.gone", Node: "n1"})
	waitQueued(t, m, "n1", 2)
	y := hs.holdNext()
	close(x.release)
	if r := result(t, first, "first2"); r.err != nil {
		t.Fatal(r.err)
	}
	<-y.entered
	abandon()
	if r := result(t, gone, "gone"); !errors.Is(r.err, context.Canceled) || len(r.v4) != 0 {
		t.Errorf("gone while written: %v %v, want context.Canceled", r.v4, r.err)
	}
	close(y.release)
	if r := result(t, other, "other"); r.err != nil || len(r.v4) != 1 {
		t.Errorf("other: %v %v", r.v4, r.err)
	}

	s := checkInvariants(t, m)
	for _, h := range []string{"k8s-pod-network.quitter", "k8s-pod-network.gone"} {
		if got := s.byHandle[h]; len(got) != 0 {
			t.Errorf("%s holds %v after giving up", h, got)
		}
	}
	for _, h := range []string{"k8s-pod-network.first", "k8s-pod-network.leader", "k8s-pod-network.keep", "k8s-pod-network.first2", "k8s-pod-network.other"} {
		mustOne(t, s, h)
	}
}
