package agent

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/tabbynet/tabby/api/agentpb"
	"github.com/tabbynet/tabby/ipam"
)

// requestHandle is the request's handle, or the workload's standard one.
func requestHandle(handleID string, id *agentpb.WorkloadID) (string, *workload, error) {
	var w *workload
	if id != nil {
		parsed, err := parseWorkload(id)
		if err != nil {
			return "", nil, invalid("%v", err)
		}
		w = &parsed
	}
	h := strings.TrimSpace(handleID)
	if h == "" {
		if w == nil {
			return "", nil, invalid("handle_id is empty and no workload is given: set handle_id (k8s-pod-network.<containerID>)")
		}
		h = w.handle()
	}
	return h, w, nil
}

// hostPrefix is the address as a /32 or /128.
func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// AssignIPs allocates the workload's addresses. A handle that already holds
// addresses gets them back (a retried ADD must not take a second set).
func (s *Server) AssignIPs(ctx context.Context, req *agentpb.AssignIPsRequest) (*agentpb.AssignIPsResponse, error) {
	handle, w, err := requestHandle(req.GetHandleId(), req.GetWorkload())
	if err != nil {
		return nil, err
	}
	if !req.GetAssignIpv4() && !req.GetAssignIpv6() {
		return nil, invalid("neither assign_ipv4 nor assign_ipv6 is set: nothing to assign (netconf ipam.assign_ipv4 / assign_ipv6)")
	}
	start := time.Now()
	unlock, err := s.lock(ctx, handleLockKey(handle))
	if err != nil {
		return nil, err
	}
	defer unlock()

	what := "assign addresses for handle " + handle
	args := ipam.AssignArgs{
		HandleID:  handle,
		Node:      s.o.NodeName,
		Attrs:     map[string]string{},
		IPv4Pools: req.GetIpv4Pools(),
		IPv6Pools: req.GetIpv6Pools(),
	}
	if req.GetAssignIpv4() {
		args.Num4 = 1
	}
	if req.GetAssignIpv6() {
		args.Num6 = 1
	}
	if w != nil {
		args.Attrs["namespace"] = w.namespace
		if w.orchestrator == OrchestratorK8s {
			args.Attrs["pod"] = w.pod
		}
		what = "assign addresses for " + w.String()
	}
	// A handle that already holds addresses gets them back (a retried ADD
	// must not take a second set).
	v4, v6, existing, err := s.o.IPAM.AssignOnce(ctx, args)
	if err != nil {
		return nil, toStatus(err, what)
	}
	s.startPending(handle)
	resp := &agentpb.AssignIPsResponse{}
	for _, p := range append(v4, v6...) {
		resp.Ips = append(resp.Ips, hostPrefix(p.Addr()).String())
		if !existing {
			s.m.allocated.WithLabelValues(familyLabel(p.Addr())).Inc()
		}
	}
	if existing {
		s.log.Info("handle already holds addresses, returning them", "handle", handle, "ips", resp.Ips)
		return resp, nil
	}
	s.log.Info("assigned addresses", "handle", handle, "ips", resp.Ips, "ms", msSince(start))
	return resp, nil
}

// ReleaseIPs frees every address of the handle; an unknown handle is fine.
func (s *Server) ReleaseIPs(ctx context.Context, req *agentpb.ReleaseIPsRequest) (*agentpb.ReleaseIPsResponse, error) {
	handle, _, err := requestHandle(req.GetHandleId(), req.GetWorkload())
	if err != nil {
		return nil, err
	}
	unlock, err := s.lock(ctx, handleLockKey(handle))
	if err != nil {
		return nil, err
	}
	defer unlock()
	released, err := s.releaseHandleLocked(ctx, handle)
	if err != nil {
		return nil, err
	}
	s.donePending(handle)
	resp := &agentpb.ReleaseIPsResponse{}
	for _, a := range released {
		resp.Released = append(resp.Released, hostPrefix(a).String())
	}
	return resp, nil
}

func (s *Server) releaseHandleLocked(ctx context.Context, handle string) ([]netip.Addr, error) {
	what := "release the addresses of handle " + handle
	ips, err := s.o.IPAM.ReleaseHandle(ctx, handle)
	if err != nil {
		return nil, toStatus(err, what)
	}
	for _, a := range ips {
		s.m.released.WithLabelValues(familyLabel(a)).Inc()
	}
	if len(ips) > 0 {
		s.log.Info("released addresses", "handle", handle, "ips", ips)
	}
	return ips, nil
}

// msSince is a duration in milliseconds for log lines, rounded to µs.
func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }
