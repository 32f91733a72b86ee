package ipam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

// datastoreRetries bounds every compare-and-swap loop, as Calico's does.
const datastoreRetries = 100

// Errors callers can test with errors.Is.
var (
	// ErrNoFreeAddresses: the pools cannot satisfy the request. Nothing was
	// left allocated.
	ErrNoFreeAddresses = errors.New("no free addresses")
	// ErrNoPools: no pool may be used for the request (none exists, is
	// enabled, selects the node and allows the use).
	ErrNoPools = errors.New("no usable IP pools")
	// ErrPool: an explicitly requested pool cannot be used.
	ErrPool = errors.New("requested IP pool cannot be used")
	// ErrNotAllocated: the address is not allocated.
	ErrNotAllocated = errors.New("address is not allocated")
	// ErrInUse: AssignIP was asked for an address that is taken.
	ErrInUse = errors.New("address is already allocated")
	// ErrNotInPool: the address is not in any IP pool.
	ErrNotInPool = errors.New("address is not in any IP pool")
	// ErrTooManyRetries: the datastore kept reporting conflicting writes.
	ErrTooManyRetries = errors.New("too many concurrent IPAM updates, gave up after 100 attempts")
)

// IPAM allocates addresses for nodes. It is safe for concurrent use, and any
// number of IPAM values (in any number of processes) may share a datastore.
type IPAM struct {
	ds  datastore.Interface
	log *slog.Logger
	now func() time.Time

	mu        sync.Mutex
	nodeLocks map[string]chan struct{}
	queues    map[string]*nodeQueue // AutoAssign requests per node (batch.go); guarded by mu
	blocks    *blockCache
}

// New returns an IPAM on ds. A nil logger discards logs.
func New(ds datastore.Interface, log *slog.Logger) *IPAM {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &IPAM{ds: ds, log: log, now: time.Now, nodeLocks: map[string]chan struct{}{}, queues: map[string]*nodeQueue{}, blocks: newBlockCache()}
}

// lockNode serialises this value's assignments for one node (AssignIP, and
// the batch writes of AutoAssign). It only saves conflicting writes between
// goroutines of one process; the datastore CAS is what keeps assignments
// correct.
func (m *IPAM) lockNode(ctx context.Context, node string) (func(), error) {
	m.mu.Lock()
	ch, ok := m.nodeLocks[node]
	if !ok {
		ch = make(chan struct{}, 1)
		m.nodeLocks[node] = ch
	}
	m.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// backoff pauses briefly after a conflict so that writers racing for one
// record spread out instead of colliding again at once.
func backoff(ctx context.Context, attempt int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if attempt == 0 {
		return nil
	}
	maxWait := time.Millisecond << min(attempt, 5)
	t := time.NewTimer(rand.N(maxWait))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Typed datastore helpers.

func blockKey(name string) v3.Key    { return v3.Key{Kind: "IPAMBlock", Name: name} }
func affinityKey(name string) v3.Key { return v3.Key{Kind: "BlockAffinity", Name: name} }
func handleKey(name string) v3.Key   { return v3.Key{Kind: "IPAMHandle", Name: name} }

func getAs[T v3.Resource](ctx context.Context, ds datastore.Interface, key v3.Key) (T, error) {
	var zero T
	r, err := ds.Get(ctx, key)
	if err != nil {
		return zero, err
	}
	t, ok := r.(T)
	if !ok {
		return zero, fmt.Errorf("get %s: datastore returned %T", key, r)
	}
	return t, nil
}

func listAs[T v3.Resource](ctx context.Context, ds datastore.Interface, kind, namespace string) ([]T, error) {
	res, err := ds.List(ctx, kind, namespace)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(res.Items))
	for _, r := range res.Items {
		t, ok := r.(T)
		if !ok {
			return nil, fmt.Errorf("list %s: datastore returned %T", kind, r)
		}
		out = append(out, t)
	}
	return out, nil
}

// getBlock reads and decodes a block, and remembers what it read (see
// blockCache). A soft-deleted block (written by Calico's Kubernetes backend)
// reads as absent.
func (m *IPAM) getBlock(ctx context.Context, name string) (*blockState, error) {
	r, err := getAs[*v3.IPAMBlock](ctx, m.ds, blockKey(name))
	if datastore.IsNotFound(err) {
		m.blocks.drop(name)
	}
	if err != nil {
		return nil, err
	}
	if r.Spec.Deleted {
		m.blocks.drop(name)
		return nil, &datastore.Error{Op: "get", Key: blockKey(name), Err: datastore.ErrNotFound}
	}
	b, err := decodeBlock(r)
	if err == nil {
		m.blocks.put(copyBlockRecord(r))
	}
	return b, err
}

// listBlocks reads every block; malformed ones are logged and skipped, since
// one bad record must not stop allocation from the others.
func (m *IPAM) listBlocks(ctx context.Context) ([]*blockState, error) {
	good, bad, err := m.listAllBlocks(ctx)
	for _, b := range bad {
		m.log.Error("skipping malformed IPAM block", "block", b.name, "err", b.err)
	}
	return good, err
}

type malformedBlock struct {
	name string
	cidr netip.Prefix // when it parses: the range stays taken
	err  error
}

// listAllBlocks reads every block and also returns why each malformed one
// is unusable.
func (m *IPAM) listAllBlocks(ctx context.Context) (good []*blockState, bad []malformedBlock, err error) {
	recs, err := listAs[*v3.IPAMBlock](ctx, m.ds, "IPAMBlock", "")
	if err != nil {
		return nil, nil, fmt.Errorf("list IPAM blocks: %w", err)
	}
	good = make([]*blockState, 0, len(recs))
	for _, r := range recs {
		if r.Spec.Deleted {
			continue
		}
		b, err := decodeBlock(r)
		if err != nil {
			p, _ := netip.ParsePrefix(r.Spec.CIDR)
			bad = append(bad, malformedBlock{r.Name, p.Masked(), err})
			continue
		}
		good = append(good, b)
	}
	return good, bad, nil
}

func (m *IPAM) listAffinities(ctx context.Context) ([]*v3.BlockAffinity, error) {
	affs, err := listAs[*v3.BlockAffinity](ctx, m.ds, "BlockAffinity", "")
	if err != nil {
		return nil, fmt.Errorf("list block affinities: %w", err)
	}
	out := affs[:0]
	for _, a := range affs {
		if !a.Spec.Deleted {
			out = append(out, a)
		}
	}
	return out, nil
}

// nodeLabels reads the Node's labels; a missing Node has none.
func (m *IPAM) nodeLabels(ctx context.Context, node string) (map[string]string, error) {
	n, err := getAs[*v3.Node](ctx, m.ds, v3.Key{Kind: "Node", Name: node})
	if datastore.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read node %q: %w", node, err)
	}
	return n.Labels, nil
}
