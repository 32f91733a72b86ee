package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

// Keepalive on the client connection: a watch on a silently dead peer (a host
// that vanished without a FIN) is noticed within Time+Timeout instead of never.
const (
	keepAliveTime    = 30 * time.Second
	keepAliveTimeout = 10 * time.Second
	// maxReconnectDelay caps gRPC's reconnect backoff (120 s by default), so a
	// node agent is back within seconds of etcd returning.
	maxReconnectDelay = 5 * time.Second
)

// Store is a datastore.Interface on an etcd v3 cluster. It is safe for
// concurrent use.
type Store struct {
	client         *clientv3.Client
	endpoints      string // for error messages
	requestTimeout time.Duration
	closed         atomic.Bool
	closeOnce      sync.Once
	closeErr       error
}

// errClosed is returned by every call after Close; without this check the
// etcd client would retry a closed connection until the request timeout.
var errClosed = errors.New("the etcd datastore client is closed")

var _ datastore.Interface = (*Store)(nil)

// New connects to the cluster in cfg. It does not wait for the cluster: an
// unreachable one surfaces as ErrUnavailable on the first request, within the
// request timeout.
func New(cfg datastore.EtcdConfig) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("etcd datastore: %w", err)
	}
	tlsCfg, err := clientTLS(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd datastore TLS: %w", err)
	}
	dial := cfg.DialTimeout
	if dial == 0 {
		dial = datastore.DefaultDialTimeout
	}
	req := cfg.RequestTimeout
	if req == 0 {
		req = datastore.DefaultRequestTimeout
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          dial,
		DialKeepAliveTime:    keepAliveTime,
		DialKeepAliveTimeout: keepAliveTimeout,
		TLS:                  tlsCfg,
		// The client's own logs repeat what the returned errors say, and the
		// store has no logger of its own: it reports through errors.
		Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 200 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxReconnectDelay},
			MinConnectTimeout: dial,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd datastore at %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	return &Store{client: c, endpoints: strings.Join(cfg.Endpoints, ","), requestTimeout: req}, nil
}

// clientTLS returns nil (plain connections) unless a TLS file is named or an
// endpoint is https, in which case the system roots verify servers when no CA
// file is given.
func clientTLS(cfg datastore.EtcdConfig) (*tls.Config, error) {
	secure := cfg.CACertFile != "" || cfg.CertFile != ""
	for _, ep := range cfg.Endpoints {
		if u, err := url.Parse(ep); err == nil && (u.Scheme == "https" || u.Scheme == "unixs") {
			secure = true
		}
	}
	if !secure {
		return nil, nil
	}
	info := transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, TrustedCAFile: cfg.CACertFile}
	return info.ClientConfig()
}

// Client is the underlying etcd client, for maintenance (compaction, status)
// and tests. Writes through it bypass the resource encoding: do not write
// resource keys with it.
func (s *Store) Client() *clientv3.Client { return s.client }

// Close releases the connection. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if err := s.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
			s.closeErr = fmt.Errorf("close etcd client: %w", err)
		}
	})
	return s.closeErr
}

// request bounds one call by the request timeout.
func (s *Store) request(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.requestTimeout)
}

// fail turns an etcd failure into a datastore error. parent is the caller's
// context: when it ended, that is the cause, not the cluster.
func (s *Store) fail(parent context.Context, op string, key v3.Key, err error) error {
	return &datastore.Error{Op: op, Key: key, Err: s.cause(parent, err)}
}

func (s *Store) cause(parent context.Context, err error) error {
	switch {
	case parent.Err() != nil:
		return fmt.Errorf("%w (etcd at %s): %w", parent.Err(), s.endpoints, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: etcd at %s gave no answer within %s: %w", datastore.ErrUnavailable, s.endpoints, s.requestTimeout, err)
	case unavailable(err):
		return fmt.Errorf("%w: etcd at %s: %w", datastore.ErrUnavailable, s.endpoints, err)
	default:
		return fmt.Errorf("etcd at %s: %w", s.endpoints, err)
	}
}

// unavailable says whether err means "the cluster cannot serve right now"
// (unreachable, no leader, timed out) as opposed to a refused request.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable || ee.Code() == codes.DeadlineExceeded
	}
	if st, ok := status.FromError(err); ok {
		return st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded
	}
	return false
}

func errorf(op string, key v3.Key, err error) error {
	return &datastore.Error{Op: op, Key: key, Err: err}
}

// resolve finds the kind and key of a resource being written.
func (s *Store) resolve(op string, r v3.Resource) (v3.KindInfo, v3.Key, string, error) {
	if r == nil {
		return v3.KindInfo{}, v3.Key{}, "", errorf(op, v3.Key{}, errors.New("resource is nil"))
	}
	key := v3.KeyOf(r)
	ki, err := lookupKind(key.Kind)
	if err != nil {
		return ki, key, "", errorf(op, key, err)
	}
	path, err := ResourcePath(key)
	if err != nil {
		return ki, key, "", errorf(op, key, err)
	}
	if s.closed.Load() {
		return ki, key, "", errorf(op, key, errClosed)
	}
	return ki, key, path, nil
}

// Get implements datastore.Interface.
func (s *Store) Get(ctx context.Context, key v3.Key) (v3.Resource, error) {
	const op = "get"
	path, err := ResourcePath(key)
	if err != nil {
		return nil, errorf(op, key, err)
	}
	ki, _ := lookupKind(key.Kind)
	if s.closed.Load() {
		return nil, errorf(op, key, errClosed)
	}
	rctx, cancel := s.request(ctx)
	defer cancel()
	resp, err := s.client.Get(rctx, path)
	if err != nil {
		return nil, s.fail(ctx, op, key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, errorf(op, key, datastore.ErrNotFound)
	}
	kv := resp.Kvs[0]
	r, err := decode(ki, path, kv.Value, kv.ModRevision)
	if err != nil {
		return nil, errorf(op, key, err)
	}
	return r, nil
}

// List implements datastore.Interface with one range read, so the items are a
// consistent snapshot at the returned revision.
func (s *Store) List(ctx context.Context, kind, namespace string) (datastore.ListResult, error) {
	const op = "list"
	key := v3.Key{Kind: kind, Namespace: namespace}
	ki, prefix, err := listPrefix(kind, namespace)
	if err != nil {
		return datastore.ListResult{}, errorf(op, key, err)
	}
	if s.closed.Load() {
		return datastore.ListResult{}, errorf(op, key, errClosed)
	}
	rctx, cancel := s.request(ctx)
	defer cancel()
	resp, err := s.client.Get(rctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return datastore.ListResult{}, s.fail(ctx, op, key, err)
	}
	items := make([]v3.Resource, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if _, ok := keyFromPath(ki, string(kv.Key)); !ok {
			continue // not a resource key of this layout
		}
		r, err := decode(ki, string(kv.Key), kv.Value, kv.ModRevision)
		if err != nil {
			// A corrupt value fails the list loudly, naming the key, rather
			// than making a resource silently disappear from every consumer.
			return datastore.ListResult{}, errorf(op, key, err)
		}
		items = append(items, r)
	}
	// etcd orders by key bytes, where "a-b/x" sorts before "a/y"; callers
	// want namespace, then name.
	sort.Slice(items, func(i, j int) bool {
		if a, b := items[i].GetNamespace(), items[j].GetNamespace(); a != b {
			return a < b
		}
		return items[i].GetName() < items[j].GetName()
	})
	return datastore.ListResult{Items: items, Revision: formatRev(resp.Header.Revision)}, nil
}

// Create implements datastore.Interface.
func (s *Store) Create(ctx context.Context, r v3.Resource) (v3.Resource, error) {
	const op = "create"
	ki, key, path, err := s.resolve(op, r)
	if err != nil {
		return nil, err
	}
	c := v3.Clone(r)
	if c.GetUID() == "" {
		c.SetUID(types.UID(uuid.NewString()))
	}
	if ts := c.GetCreationTimestamp(); ts.IsZero() {
		c.SetCreationTimestamp(metav1.NewTime(time.Now().UTC().Truncate(time.Second)))
	}
	val, err := encode(ki, c)
	if err != nil {
		return nil, errorf(op, key, err)
	}
	rctx, cancel := s.request(ctx)
	defer cancel()
	resp, err := s.client.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(path), "=", 0)).
		Then(clientv3.OpPut(path, string(val))).
		Commit()
	if err != nil {
		return nil, s.fail(ctx, op, key, err)
	}
	if !resp.Succeeded {
		return nil, errorf(op, key, datastore.ErrAlreadyExists)
	}
	return s.stored(op, ki, key, path, val, resp.Header.Revision)
}

// stored returns what a Get would now return for a value just written.
func (s *Store) stored(op string, ki v3.KindInfo, key v3.Key, path string, val []byte, rev int64) (v3.Resource, error) {
	out, err := decode(ki, path, val, rev)
	if err != nil {
		return nil, errorf(op, key, err)
	}
	return out, nil
}

// Update implements datastore.Interface.
func (s *Store) Update(ctx context.Context, r v3.Resource) (v3.Resource, error) {
	const op = "update"
	ki, key, path, err := s.resolve(op, r)
	if err != nil {
		return nil, err
	}
	rv := r.GetResourceVersion()
	if rv == "" {
		return nil, errorf(op, key, errors.New("metadata.resourceVersion is empty: read the resource first and update what was read"))
	}
	rev, err := parseRev(rv)
	if err != nil {
		return nil, errorf(op, key, err)
	}

	// uid and creationTimestamp come from the stored resource, read at the
	// very revision the write below compares against, so they are exactly
	// the stored ones even if the caller changed or dropped them.
	rctx, cancel := s.request(ctx)
	defer cancel()
	cur, err := s.client.Get(rctx, path)
	if err != nil {
		return nil, s.fail(ctx, op, key, err)
	}
	if len(cur.Kvs) == 0 {
		return nil, errorf(op, key, datastore.ErrNotFound)
	}
	if got := cur.Kvs[0].ModRevision; got != rev {
		return nil, errorf(op, key, conflict(rv, got))
	}
	old, err := decode(ki, path, cur.Kvs[0].Value, rev)
	if err != nil {
		return nil, errorf(op, key, err)
	}

	c := v3.Clone(r)
	c.SetUID(old.GetUID())
	c.SetCreationTimestamp(old.GetCreationTimestamp())
	val, err := encode(ki, c)
	if err != nil {
		return nil, errorf(op, key, err)
	}
	resp, err := s.client.Txn(rctx).
		If(clientv3.Compare(clientv3.ModRevision(path), "=", rev)).
		Then(clientv3.OpPut(path, string(val))).
		Else(clientv3.OpGet(path)).
		Commit()
	if err != nil {
		return nil, s.fail(ctx, op, key, err)
	}
	if !resp.Succeeded {
		return nil, errorf(op, key, lostRace(rv, resp))
	}
	return s.stored(op, ki, key, path, val, resp.Header.Revision)
}

// conflict says which versions disagreed, so a log line explains a retry.
func conflict(rv string, stored int64) error {
	return fmt.Errorf("%w (resourceVersion %s was read, %d is stored)", datastore.ErrConflict, rv, stored)
}

// lostRace explains a failed compare from the transaction's Else get.
func lostRace(rv string, resp *clientv3.TxnResponse) error {
	if len(resp.Responses) == 1 {
		if rr := resp.Responses[0].GetResponseRange(); rr != nil {
			if len(rr.Kvs) == 0 {
				return datastore.ErrNotFound
			}
			return conflict(rv, rr.Kvs[0].ModRevision)
		}
	}
	return datastore.ErrConflict
}

// Delete implements datastore.Interface. The deleted value is read by the
// delete itself (prev-kv), so the returned resource is exactly what was removed.
func (s *Store) Delete(ctx context.Context, key v3.Key, resourceVersion string) (v3.Resource, error) {
	const op = "delete"
	path, err := ResourcePath(key)
	if err != nil {
		return nil, errorf(op, key, err)
	}
	ki, _ := lookupKind(key.Kind)
	if s.closed.Load() {
		return nil, errorf(op, key, errClosed)
	}
	cmp := clientv3.Compare(clientv3.CreateRevision(path), ">", 0)
	if resourceVersion != "" {
		rev, err := parseRev(resourceVersion)
		if err != nil {
			return nil, errorf(op, key, err)
		}
		cmp = clientv3.Compare(clientv3.ModRevision(path), "=", rev)
	}
	rctx, cancel := s.request(ctx)
	defer cancel()
	resp, err := s.client.Txn(rctx).
		If(cmp).
		Then(clientv3.OpDelete(path, clientv3.WithPrevKV())).
		Else(clientv3.OpGet(path)).
		Commit()
	if err != nil {
		return nil, s.fail(ctx, op, key, err)
	}
	if !resp.Succeeded {
		return nil, errorf(op, key, lostRace(resourceVersion, resp))
	}
	dr := resp.Responses[0].GetResponseDeleteRange()
	if dr == nil || len(dr.PrevKvs) == 0 {
		return stub(ki, key, 0), nil
	}
	prev := dr.PrevKvs[0]
	out, err := decode(ki, path, prev.Value, prev.ModRevision)
	if err != nil {
		// The delete happened; an unreadable old value must not make the
		// caller believe otherwise and retry into ErrNotFound.
		return stub(ki, key, prev.ModRevision), nil
	}
	return out, nil
}

// CalicoIPAMPrefix is where Calico's own etcdv3 datastore keeps its IPAM
// blocks, affinities and handles.
const CalicoIPAMPrefix = "/calico/ipam/v2/"

// HasCalicoIPAMData reports whether this etcd holds IPAM records written by
// Calico itself. Tabby keeps its IPAM records elsewhere, so allocating next
// to live Calico records would hand out addresses Calico's pods still use.
func (s *Store) HasCalicoIPAMData(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout)
	defer cancel()
	resp, err := s.client.Get(ctx, CalicoIPAMPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("look for Calico IPAM records under %s: %w", CalicoIPAMPrefix, err)
	}
	return resp.Count > 0, nil
}
