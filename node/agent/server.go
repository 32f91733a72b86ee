package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tabbynet/tabby/api/agentpb"
	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/felix"
	"github.com/tabbynet/tabby/felix/dataplane"
	"github.com/tabbynet/tabby/ipam"
)

// IPAM is what the agent needs of the ipam package.
type IPAM interface {
	AssignOnce(ctx context.Context, args ipam.AssignArgs) (v4, v6 []netip.Prefix, existing bool, err error)
	ReleaseHandle(ctx context.Context, handleID string) ([]netip.Addr, error)
	IPsByHandle(ctx context.Context, handleID string) ([]netip.Addr, error)
	Check(ctx context.Context) (*ipam.Report, error)
}

// Dataplane is what the agent needs of Felix: program a workload's host
// routes (returning once they are in the kernel), remove them, and compare
// the kernel with an endpoint.
type Dataplane interface {
	UpsertWorkload(ctx context.Context, wep *v3.WorkloadEndpoint) error
	RemoveWorkload(ctx context.Context, key v3.Key) error
	CheckWorkload(wep *v3.WorkloadEndpoint) []string
}

// BGPStatus is the hook for the BGP speaker's peer table (nil until there
// is one).
type BGPStatus interface {
	Peers(ctx context.Context) []*agentpb.BGPPeerStatus
	State() string // "running" or "disabled"
}

// Options wires a Server.
type Options struct {
	NodeName  string
	Datastore datastore.Interface
	IPAM      IPAM
	Dataplane Dataplane
	Log       *slog.Logger
	// Metrics receives the agent's metrics; nil keeps them private.
	Metrics prometheus.Registerer
	// MTU is the MTU pods should use (AddWorkloadResponse, Status); nil or
	// 0 lets the plugin choose.
	MTU func() int
	// Health reports the daemon's liveness and readiness for Status.
	Health  func() (live, ready bool)
	BGP     BGPStatus
	Version string
}

// Server implements agentpb.AgentServer.
type Server struct {
	agentpb.UnimplementedAgentServer
	o       Options
	log     *slog.Logger
	gate    *gate          // shared by every state-changing call, exclusive for GC (locks.go)
	keys    *keyLocks      // one lock per endpoint and per IPAM handle (locks.go)
	pending pendingHandles // handles assigned whose AddWorkload has not come (locks.go)
	m       metrics
	started time.Time
	grpc    *grpc.Server
}

// New builds the service and its gRPC server; Serve starts answering.
func New(o Options) (*Server, error) {
	switch {
	case o.NodeName == "":
		return nil, errors.New("agent: node name is empty")
	case o.Datastore == nil || o.IPAM == nil || o.Dataplane == nil:
		return nil, errors.New("agent: datastore, IPAM and dataplane are all required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
	m, err := newMetrics(o.Metrics)
	if err != nil {
		return nil, err
	}
	s := &Server{o: o, log: o.Log, gate: newGate(), keys: newKeyLocks(), m: m, started: time.Now()}
	s.grpc = grpc.NewServer(grpc.ChainUnaryInterceptor(s.observe, s.recoverPanic))
	agentpb.RegisterAgentServer(s.grpc, s)
	return s, nil
}

// Serve answers on l until Stop. It returns nil after Stop.
func (s *Server) Serve(l net.Listener) error {
	if err := s.grpc.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve the agent API: %w", err)
	}
	return nil
}

// Stop stops accepting calls and lets running ones finish until ctx ends,
// then cuts them off.
func (s *Server) Stop(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
	}
}

// recoverPanic turns a bug in one call into an Internal error for that call
// instead of the end of calico-node.
func (s *Server) recoverPanic(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("agent call panicked", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "calico-node hit a bug handling %s: %v (see its log)", path.Base(info.FullMethod), r)
		}
	}()
	return handler(ctx, req)
}

// recoverInto is recoverPanic for a goroutine a call starts: a panic there
// is reported through report as the call's error instead of ending
// calico-node. Use it as `defer s.recoverInto(...)`.
func (s *Server) recoverInto(report func(error)) {
	if r := recover(); r != nil {
		s.log.Error("agent call panicked", "panic", r, "stack", string(debug.Stack()))
		report(status.Errorf(codes.Internal, "calico-node hit a bug: %v (see its log)", r))
	}
}

// observe logs and counts every call by method and result code.
func (s *Server) observe(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	method := path.Base(info.FullMethod)
	code := status.Code(err)
	if method != "Status" {
		s.m.requests.WithLabelValues(method, code.String()).Inc()
		s.m.duration.WithLabelValues(method).Observe(time.Since(start).Seconds())
	}
	switch {
	case err != nil:
		s.log.Warn("agent call failed", "method", method, "code", code.String(), "err", status.Convert(err).Message())
	case method != "Status":
		s.log.Debug("agent call", "method", method, "duration", time.Since(start))
	}
	return resp, err
}

// toStatus turns an internal error into a gRPC status saying what to do.
// what names the operation, e.g. "assign addresses for pod ns/p".
func toStatus(err error, what string) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	msg := what + ": " + err.Error()
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, msg)
	case errors.Is(err, datastore.ErrUnavailable):
		return status.Error(codes.Unavailable, msg+" (the datastore is unreachable: the request can be retried once it is back)")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, msg)
	case errors.Is(err, ipam.ErrNoFreeAddresses):
		return status.Error(codes.ResourceExhausted, msg+" (add an IP pool, or free leaked addresses with calicoctl ipam check)")
	case errors.Is(err, ipam.ErrPool):
		return status.Error(codes.InvalidArgument, msg+" (fix the requested pools: netconf ipv4_pools/ipv6_pools or the cni.projectcalico.org/ipv4pools annotation)")
	case errors.Is(err, ipam.ErrNoPools):
		return status.Error(codes.FailedPrecondition, msg+" (create an IP pool that selects this node: calicoctl apply -f pool.yaml)")
	case errors.Is(err, felix.ErrNotInSync):
		return status.Error(codes.Unavailable, msg+" (calico-node is still syncing with the datastore: retry shortly)")
	case errors.Is(err, dataplane.ErrNoInterface):
		return status.Error(codes.FailedPrecondition, msg+" (create the host side of the pod's veth before AddWorkload)")
	case errors.Is(err, dataplane.ErrConflict):
		return status.Error(codes.FailedPrecondition, msg+" (a route that Tabby does not own holds this address: remove it, or check for an address clash)")
	case errors.Is(err, ipam.ErrTooManyRetries), errors.Is(err, datastore.ErrConflict):
		return status.Error(codes.Aborted, msg+" (too many concurrent writers: retry)")
	}
	return status.Error(codes.Internal, msg)
}

// invalid is an InvalidArgument status for a malformed request.
func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	allocated *prometheus.CounterVec
	released  *prometheus.CounterVec
}

// Metric names exported by the agent.
const (
	MetricCNIRequests     = "tabby_cni_requests_total"
	MetricCNIDuration     = "tabby_cni_request_duration_seconds"
	MetricIPAMAllocations = "tabby_ipam_allocations_total"
	MetricIPAMReleases    = "tabby_ipam_releases_total"
)

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricCNIRequests,
			Help: "Agent API calls from the CNI plugins, by RPC and gRPC result code.",
		}, []string{"rpc", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricCNIDuration,
			Help:    "Time to answer an agent API call, by RPC (AddWorkload includes programming the host route).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"rpc"}),
		allocated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricIPAMAllocations,
			Help: "Addresses this node's agent allocated, by IP family.",
		}, []string{"family"}),
		released: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricIPAMReleases,
			Help: "Addresses this node's agent released, by IP family.",
		}, []string{"family"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.allocated, m.released} {
		if err := reg.Register(c); err != nil {
			return metrics{}, fmt.Errorf("register agent metrics: %w", err)
		}
	}
	// Make the series visible at zero before the first pod.
	for _, fam := range []string{"4", "6"} {
		m.allocated.WithLabelValues(fam)
		m.released.WithLabelValues(fam)
	}
	return m, nil
}

func familyLabel(a netip.Addr) string {
	if a.Is4() {
		return "4"
	}
	return "6"
}
