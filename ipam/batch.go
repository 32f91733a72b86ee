package ipam

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Group commit of one node's requests.
//
// Every address of a node comes from a block affine to it, so concurrent
// requests of one node (30 pods started at once) all want to rewrite the
// same block record. One after another, each pays its own handle write and
// block write; racing, they fail each other's compare-and-swap. Instead, the
// requests that arrive while one batch is being written queue, and the
// first of them then writes them all as the next batch: the handles in
// parallel (different records), then one block write that takes an address
// for each. The cost of a batch is about that of a single request, and the
// block write is still one compare-and-swap, so nothing about correctness
// changes: a request that does not fit, or a batch write that fails for a
// reason other than a conflict, goes through the one-request path below,
// exactly as without batching.

// batchTimeout bounds the work a batch leader does for the whole batch; it
// is detached from the leader's own context, which may end before the
// others' requests are written.
const batchTimeout = 2 * time.Minute

// nodeQueue holds one node's requests waiting for the next batch.
type nodeQueue struct {
	leading bool         // a leader is writing a batch, or has been chosen
	pending []*batchItem // arrived since the current batch was taken
}

// batchItem is one AutoAssign request in a node's queue. Its fields after
// req are the leader's until done is closed; the state flags are guarded by
// IPAM.mu.
type batchItem struct {
	req    *assignRequest
	v4, v6 []assigned
	err    error
	done   chan struct{} // closed when the request is finished
	lead   chan struct{} // closed when this request must write the next batch

	taken     bool // in a batch being written
	leader    bool // chosen to write the next batch
	finished  bool // its result is final; done is about to close
	abandoned bool // its caller gave up: what it got is released
}

// assignQueued runs req as part of a batch of its node's requests.
func (m *IPAM) assignQueued(ctx context.Context, req *assignRequest) ([]assigned, []assigned, error) {
	node := req.args.Node
	it := &batchItem{req: req, done: make(chan struct{}), lead: make(chan struct{})}
	m.mu.Lock()
	q := m.queues[node]
	if q == nil {
		q = &nodeQueue{}
		m.queues[node] = q
	}
	q.pending = append(q.pending, it)
	lead := !q.leading
	if lead {
		q.leading, it.leader = true, true
	}
	m.mu.Unlock()

	if !lead {
		select {
		case <-it.done:
			return it.v4, it.v6, it.err
		case <-it.lead:
		case <-ctx.Done():
			m.mu.Lock()
			switch {
			case it.finished: // too late to give up: take the result
				m.mu.Unlock()
				<-it.done
				return it.v4, it.v6, it.err
			case it.leader: // chosen just now: pass it on
				q.pending = slices.DeleteFunc(q.pending, func(x *batchItem) bool { return x == it })
				m.handOffLocked(node, q)
			case !it.taken:
				q.pending = slices.DeleteFunc(q.pending, func(x *batchItem) bool { return x == it })
			default:
				it.abandoned = true // the leader releases what it gets
			}
			taken := it.taken
			m.mu.Unlock()
			if !taken {
				m.dropEarly(ctx, req) // no leader has it: this goroutine owns it still
			}
			return nil, nil, fmt.Errorf("auto-assign for node %q: %w", node, ctx.Err())
		}
	}

	// This request leads: take everything queued (itself included), write
	// it as one batch, and let the first request that queued meanwhile
	// lead the next one.
	m.mu.Lock()
	batch := q.pending
	q.pending = nil
	for _, x := range batch {
		x.taken = true
	}
	m.mu.Unlock()
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	m.writeBatch(bctx, node, batch)
	cancel()
	m.mu.Lock()
	m.handOffLocked(node, q)
	m.mu.Unlock()

	if err := ctx.Err(); err != nil && it.err == nil {
		m.rollback(ctx, req.args.HandleID, append(it.v4, it.v6...))
		return nil, nil, fmt.Errorf("auto-assign for node %q: %w", node, err)
	}
	return it.v4, it.v6, it.err
}

// handOffLocked chooses the next leader of q, or records that none is needed.
func (m *IPAM) handOffLocked(node string, q *nodeQueue) {
	if len(q.pending) == 0 {
		q.leading = false
		delete(m.queues, node)
		return
	}
	next := q.pending[0]
	next.leader = true
	close(next.lead)
}

// writeBatch assigns every request of batch, holding the node's lock, and
// finishes each (closing done, or releasing what it got when its caller has
// gone).
func (m *IPAM) writeBatch(ctx context.Context, node string, batch []*batchItem) {
	unlock, err := m.lockNode(ctx, node)
	if err != nil {
		for _, it := range batch {
			it.err = fmt.Errorf("auto-assign for node %q: %w", node, err)
		}
	} else {
		for _, ver := range []int{4, 6} {
			m.assignFamily(ctx, node, ver, batch)
		}
		unlock()
	}
	for _, it := range batch {
		m.dropEarly(ctx, it.req)
		m.mu.Lock()
		it.finished = true
		abandoned := it.abandoned
		m.mu.Unlock()
		if abandoned {
			m.rollback(ctx, it.req.args.HandleID, append(it.v4, it.v6...))
			it.v4, it.v6 = nil, nil
		}
		close(it.done)
	}
}

// assignFamily assigns the version-ver addresses of every request of the
// batch that still needs them: grouped by the pools they may use, from the
// node's cached blocks with room several requests per block write, and
// whatever that leaves through the one-request path. A request that fails
// here releases what it got for the other version.
func (m *IPAM) assignFamily(ctx context.Context, node string, ver int, batch []*batchItem) {
	groups := map[string][]*batchPart{}
	var keys []string
	var single []*batchItem
	for _, it := range batch {
		args := it.req.args
		num, requested := args.Num4, args.IPv4Pools
		if ver == 6 {
			num, requested = args.Num6, args.IPv6Pools
		}
		if it.err != nil || num == 0 {
			continue
		}
		pools, err := selectPools(it.req.in.pools, ver, requested, node, it.req.in.labels, args.use())
		if err != nil {
			m.failFamily(ctx, it, ver, err)
			continue
		}
		if len(batch) == 1 {
			single = append(single, it) // nothing to share: the usual path
			continue
		}
		key := poolKey(pools)
		if _, ok := groups[key]; !ok {
			keys = append(keys, key)
		}
		groups[key] = append(groups[key], &batchPart{it: it, n: num, pools: pools})
	}
	for _, key := range keys {
		parts := groups[key]
		m.assignShared(ctx, node, ver, parts[0].pools, parts)
		for _, p := range parts {
			switch {
			case p.err != nil:
				m.failFamily(ctx, p.it, ver, p.err)
			case len(p.got) == 0:
				single = append(single, p.it)
			default:
				p.it.setGot(ver, p.got)
			}
		}
	}
	for _, it := range single {
		num, requested := it.req.args.Num4, it.req.args.IPv4Pools
		if ver == 6 {
			num, requested = it.req.args.Num6, it.req.args.IPv6Pools
		}
		got, err := m.autoAssign(ctx, it.req, ver, num, requested)
		if err != nil {
			m.failFamily(ctx, it, ver, err)
			continue
		}
		it.setGot(ver, got)
	}
}

func poolKey(pools []pool) string {
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = p.name
	}
	return strings.Join(names, "\x00")
}

func (it *batchItem) setGot(ver int, got []assigned) {
	if ver == 4 {
		it.v4 = got
	} else {
		it.v6 = got
	}
}

// failFamily records a request's failure for one version, as AutoAssign
// words it, and releases its addresses of the other version.
func (m *IPAM) failFamily(ctx context.Context, it *batchItem, ver int, err error) {
	it.err = fmt.Errorf("auto-assign IPv%d for node %q: %w", ver, it.req.args.Node, err)
	m.rollback(ctx, it.req.args.HandleID, append(it.v4, it.v6...))
	it.v4, it.v6 = nil, nil
}

// batchPart is one request's share of a shared block write.
type batchPart struct {
	it      *batchItem
	n       int
	pools   []pool
	got     []assigned
	err     error
	counted int // addresses in the handle's count and not (yet) in the block
	ords    []int
}

// assignShared serves parts (all wanting addresses of version ver from the
// same pools) from the node's cached blocks with room, taking each part's
// addresses from one block or not at all, so that a part left unserved
// holds nothing and can go the one-request way. Per block: every part's
// handle is counted (in parallel), then one compare-and-swap takes the
// addresses of every part that still fits; a conflict re-reads and
// retries; counts of parts that did not make it are taken back.
func (m *IPAM) assignShared(ctx context.Context, node string, ver int, pools []pool, parts []*batchPart) {
	for _, b := range m.blocks.withRoom(node, ver, pools) {
		var todo []*batchPart
		free := b.free()
		for _, p := range parts {
			if p.err == nil && len(p.got) == 0 && p.n <= free {
				todo = append(todo, p)
				free -= p.n
			}
		}
		if len(todo) == 0 {
			continue
		}
		m.countHandles(ctx, b, todo)
		m.writeShared(ctx, node, b, slices.DeleteFunc(slices.Clone(todo), func(p *batchPart) bool { return p.err != nil }))
		for _, p := range todo {
			if p.counted != 0 {
				m.undoHandle(ctx, p.it.req.args.HandleID, b.prefix, p.counted)
				p.counted = 0
			}
		}
	}
}

// countHandles adds each part's addresses to its handle's count for b's
// block, all at once: they are different records.
func (m *IPAM) countHandles(ctx context.Context, b *blockState, parts []*batchPart) {
	var wg sync.WaitGroup
	for _, p := range parts {
		req := p.it.req
		if req.args.HandleID == "" {
			continue
		}
		if p.counted = req.takeEarly(b.prefix); p.counted == p.n {
			continue // counted while its inputs were read
		}
		goCatch(&wg, &p.err, func() error {
			if err := m.adjustHandle(ctx, req.args.HandleID, b.prefix, plus(p.n-p.counted), !req.handleWritten); err != nil {
				return err
			}
			req.handleWritten = true
			p.counted = p.n
			return nil
		})
	}
	wg.Wait()
}

// writeShared takes the parts' addresses from block b in one
// compare-and-swap (re-reading on a conflict). Parts that no longer fit, or
// all of them when the block is gone or no longer the node's, are left
// without addresses.
func (m *IPAM) writeShared(ctx context.Context, node string, b *blockState, parts []*batchPart) {
	p0 := b.prefix
	for attempt := range datastoreRetries {
		if err := backoff(ctx, attempt); err != nil {
			setErr(parts, err)
			return
		}
		if attempt > 0 {
			var err error
			if b, err = m.getBlock(ctx, blockName(p0)); err != nil {
				if !isRetryable(err) {
					setErr(parts, fmt.Errorf("read block %s: %w", p0, err))
				}
				return
			}
		}
		if !b.affineTo(node) {
			return
		}
		seq := b.rec.Spec.SequenceNumber
		var fit []*batchPart
		for _, p := range parts {
			p.ords = nil
			if p.n <= b.free() {
				p.ords = b.autoAssign(p.n, p.it.req.args.HandleID, p.it.req.attrs)
				fit = append(fit, p)
			}
		}
		if len(fit) == 0 {
			return
		}
		b.rec.Spec.SequenceNumber++
		if _, err := m.updateBlock(ctx, b.rec); err != nil {
			if isRetryable(err) {
				continue
			}
			// The write may have happened: keep the handle counts (see
			// assignFromBlock) and fail the parts that were in it.
			for _, p := range fit {
				p.counted = 0
				p.err = fmt.Errorf("write block %s: %w", p0, err)
			}
			return
		}
		for _, p := range fit {
			p.counted = 0
			for _, o := range p.ords {
				p.got = append(p.got, assigned{prefix: b.prefixOf(o), seq: seq})
			}
		}
		if len(fit) > 1 {
			m.log.Debug("assigned addresses for several requests in one block write", "node", node, "block", p0, "requests", len(fit))
		}
		return
	}
	setErr(parts, fmt.Errorf("assign from block %s: %w", p0, ErrTooManyRetries))
}

func setErr(parts []*batchPart, err error) {
	for _, p := range parts {
		if p.err == nil && len(p.got) == 0 {
			p.err = err
		}
	}
}
