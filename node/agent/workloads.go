package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tabbynet/tabby/api/agentpb"
	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/ipam"
)

// writeRetries bounds re-reading an endpoint after a revision conflict.
const writeRetries = 5

// endpointFor builds the WorkloadEndpoint an AddWorkload asks for.
func (s *Server) endpointFor(req *agentpb.AddWorkloadRequest) (*v3.WorkloadEndpoint, workload, error) {
	w, err := parseWorkload(req.GetWorkload())
	if err != nil {
		return nil, w, invalid("%v", err)
	}
	name, err := w.endpointName(s.o.NodeName)
	if err != nil {
		return nil, w, invalid("%v", err)
	}
	iface := strings.TrimSpace(req.GetInterfaceName())
	if iface == "" || len(iface) > 15 {
		return nil, w, invalid("interface_name %q is not a host interface name: give the host side of the pod's veth (cali + 11 hex characters)", iface)
	}
	mac := strings.TrimSpace(req.GetMac())
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil {
			return nil, w, invalid("mac %q is not a MAC address", mac)
		}
		mac = hw.String()
	}
	if len(req.GetIps()) == 0 {
		return nil, w, invalid("ips is empty: pass the addresses AssignIPs returned")
	}
	var nets []string
	for i, ip := range req.GetIps() {
		p, err := netip.ParsePrefix(strings.TrimSpace(ip))
		if err != nil || p.Bits() != p.Addr().BitLen() {
			return nil, w, invalid("ips[%d] %q is not a host prefix: write it as 10.0.0.5/32 or fd00::5/128", i, ip)
		}
		nets = append(nets, p.String())
	}

	r, _ := v3.NewResource("WorkloadEndpoint")
	wep := r.(*v3.WorkloadEndpoint)
	wep.ObjectMeta = metav1.ObjectMeta{Name: name, Namespace: w.namespace, Labels: maps.Clone(req.GetLabels())}
	wep.Spec = v3.WorkloadEndpointSpec{
		Orchestrator:  w.orchestrator,
		Node:          s.o.NodeName,
		ContainerID:   w.containerID,
		Endpoint:      w.endpoint,
		InterfaceName: iface,
		MAC:           mac,
		IPNetworks:    nets,
		Profiles:      []string{"kns." + w.namespace},
	}
	if w.orchestrator == OrchestratorK8s {
		wep.Spec.Pod = w.pod
	} else {
		wep.Spec.Workload = w.containerID
	}
	// The namespace and orchestrator labels policy selectors rely on; they
	// win over request labels of the same name.
	v3.SetDefaults(wep)
	return wep, w, nil
}

// AddWorkload records the endpoint and returns once its host routes are in
// the kernel. An endpoint of the same pod from an older sandbox is replaced.
//
// The datastore write and the route are independent, so they run at once
// and the call takes as long as the slower of the two, not their sum: the
// dataplane takes the endpoint from this call (its datastore watch confirms
// it later). Whichever fails, the other is undone: an endpoint whose route
// never made it is deleted, and a route whose endpoint was not written is
// taken back (the dataplane follows the datastore again).
func (s *Server) AddWorkload(ctx context.Context, req *agentpb.AddWorkloadRequest) (*agentpb.AddWorkloadResponse, error) {
	wep, w, err := s.endpointFor(req)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	unlock, err := s.lock(ctx, endpointLockKey(wep.Namespace, wep.Name))
	if err != nil {
		return nil, err
	}
	defer unlock()

	what := "add " + w.String()
	type written struct {
		stored  *v3.WorkloadEndpoint
		created bool
		err     error
		ms      float64
	}
	wrote := make(chan written, 1)
	go func() {
		defer s.recoverInto(func(err error) { wrote <- written{err: err} })
		t := time.Now()
		stored, created, err := s.writeEndpointLocked(ctx, wep)
		wrote <- written{stored, created, err, msSince(t)}
	}()
	routeStart := time.Now()
	routeErr := s.o.Dataplane.UpsertWorkload(ctx, wep)
	routeMs := msSince(routeStart)
	wr := <-wrote

	if wr.err != nil {
		s.followDatastore(ctx, v3.KeyOf(wep))
		return nil, toStatus(wr.err, what+": write WorkloadEndpoint "+wep.Namespace+"/"+wep.Name)
	}
	if routeErr != nil {
		// Do not leave an endpoint behind whose route never made it.
		if wr.created {
			if _, derr := s.o.Datastore.Delete(context.WithoutCancel(ctx), v3.KeyOf(wr.stored), wr.stored.GetResourceVersion()); derr != nil && !datastore.IsNotFound(derr) {
				s.log.Error("removing the endpoint of a failed ADD failed; DEL or GC removes it", "endpoint", wr.stored.Name, "err", derr)
			}
		}
		return nil, toStatus(routeErr, what+": program the host route")
	}
	s.donePending(w.handle())
	s.log.Info("workload added", "workload", w.String(), "endpoint", wr.stored.Name, "interface", wr.stored.Spec.InterfaceName, "ips", wr.stored.Spec.IPNetworks,
		"write_ms", wr.ms, "route_ms", routeMs, "ms", msSince(start))
	return &agentpb.AddWorkloadResponse{EndpointName: wr.stored.Name, Mtu: int32(s.mtu())}, nil
}

// undoTimeout bounds the clean-up of a failed call, which runs even when
// the call's own context has ended.
const undoTimeout = 30 * time.Second

// followDatastore takes back a route change recorded for an endpoint whose
// write or delete failed: the dataplane is pointed at whatever the
// datastore holds for key (an older sandbox's endpoint, the endpoint that
// could not be deleted, or, after a write whose answer was lost, the new
// one), or told it is gone.
func (s *Server) followDatastore(ctx context.Context, key v3.Key) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	cur, err := s.o.Datastore.Get(ctx, key)
	switch {
	case err == nil:
		if uerr := s.o.Dataplane.UpsertWorkload(ctx, cur.(*v3.WorkloadEndpoint)); uerr != nil {
			// The stored endpoint's own problem (its veth may be gone), as
			// it was before this call.
			s.log.Debug("the stored endpoint's route is not programmed either", "endpoint", key.String(), "err", uerr)
		}
		return
	case !datastore.IsNotFound(err):
		s.log.Warn("could not read the endpoint after a failed write; removing its route", "endpoint", key.String(), "err", err)
	}
	if rerr := s.o.Dataplane.RemoveWorkload(ctx, key); rerr != nil {
		s.log.Error("removing the route of a failed ADD failed; DEL or GC removes it", "endpoint", key.String(), "err", rerr)
	}
}

// writeEndpointLocked creates the endpoint or replaces the stored one,
// re-reading on a revision conflict. A new pod is the common case, so it
// creates first and reads only when the endpoint exists.
func (s *Server) writeEndpointLocked(ctx context.Context, wep *v3.WorkloadEndpoint) (*v3.WorkloadEndpoint, bool, error) {
	key := v3.KeyOf(wep)
	var lastErr error
	for range writeRetries {
		out, err := s.o.Datastore.Create(ctx, wep)
		if err == nil {
			return out.(*v3.WorkloadEndpoint), true, nil
		}
		if !datastore.IsAlreadyExists(err) {
			return nil, false, err
		}
		cur, err := s.o.Datastore.Get(ctx, key)
		if datastore.IsNotFound(err) {
			lastErr = err // deleted in between: create again
			continue
		}
		if err != nil {
			return nil, false, err
		}
		old := cur.(*v3.WorkloadEndpoint)
		if old.Spec.ContainerID != wep.Spec.ContainerID {
			s.log.Info("replacing the endpoint of an older sandbox", "endpoint", key.Name, "old", old.Spec.ContainerID, "new", wep.Spec.ContainerID)
		}
		upd := v3.Clone(wep)
		upd.ResourceVersion = old.ResourceVersion
		out, err = s.o.Datastore.Update(ctx, upd)
		if err == nil {
			return out.(*v3.WorkloadEndpoint), false, nil
		}
		if !datastore.IsConflict(err) && !datastore.IsNotFound(err) {
			return nil, false, err
		}
		lastErr = err
	}
	return nil, false, fmt.Errorf("gave up after %d attempts: %w", writeRetries, lastErr)
}

// DelWorkload removes the endpoint and its routes. A missing endpoint is
// success; an endpoint of another container ID (a newer sandbox of the same
// pod) is left alone.
func (s *Server) DelWorkload(ctx context.Context, req *agentpb.DelWorkloadRequest) (*agentpb.DelWorkloadResponse, error) {
	w, err := parseWorkload(req.GetWorkload())
	if err != nil {
		return nil, invalid("%v", err)
	}
	name, err := w.endpointName(s.o.NodeName)
	if err != nil {
		return nil, invalid("%v", err)
	}
	unlock, err := s.lock(ctx, endpointLockKey(w.namespace, name))
	if err != nil {
		return nil, err
	}
	defer unlock()
	found, err := s.deleteEndpointLocked(ctx, v3.Key{Kind: "WorkloadEndpoint", Namespace: w.namespace, Name: name}, w.containerID)
	if err != nil {
		return nil, toStatus(err, "delete "+w.String())
	}
	return &agentpb.DelWorkloadResponse{Found: found}, nil
}

// deleteEndpointLocked deletes the endpoint at key if it belongs to
// containerID, and removes its routes. The delete and the route removal run
// at once (as AddWorkload's write and route do); when the delete fails, the
// dataplane is pointed back at what the datastore holds.
func (s *Server) deleteEndpointLocked(ctx context.Context, key v3.Key, containerID string) (bool, error) {
	for range writeRetries {
		cur, err := s.o.Datastore.Get(ctx, key)
		if datastore.IsNotFound(err) {
			// Removing nothing is cheap, and it finishes a DEL whose first
			// attempt deleted the endpoint but not the route.
			return false, s.o.Dataplane.RemoveWorkload(ctx, key)
		}
		if err != nil {
			return false, fmt.Errorf("read the endpoint: %w", err)
		}
		if stored := cur.(*v3.WorkloadEndpoint).Spec.ContainerID; stored != containerID {
			s.log.Info("not deleting the endpoint of another sandbox", "endpoint", key.Name, "stored", stored, "requested", containerID)
			return false, nil
		}
		deleted := make(chan error, 1)
		go func() {
			defer s.recoverInto(func(err error) { deleted <- err })
			_, err := s.o.Datastore.Delete(ctx, key, cur.GetResourceVersion())
			deleted <- err
		}()
		routeErr := s.o.Dataplane.RemoveWorkload(ctx, key)
		err = <-deleted
		if err != nil && !datastore.IsNotFound(err) {
			// Still stored (or changed by someone else): its route must
			// follow the datastore again.
			s.followDatastore(ctx, key)
			if datastore.IsConflict(err) {
				continue
			}
			return false, fmt.Errorf("delete the endpoint: %w", err)
		}
		if routeErr != nil {
			return true, fmt.Errorf("remove the host route: %w", routeErr)
		}
		s.log.Info("workload deleted", "endpoint", key.Name, "container", containerID)
		return true, nil
	}
	return false, fmt.Errorf("endpoint kept changing (%d attempts): %w", writeRetries, datastore.ErrConflict)
}

// CheckWorkload compares the stored endpoint, the handle's allocations and
// the kernel with what the plugin expects.
func (s *Server) CheckWorkload(ctx context.Context, req *agentpb.CheckWorkloadRequest) (*agentpb.CheckWorkloadResponse, error) {
	w, err := parseWorkload(req.GetWorkload())
	if err != nil {
		return nil, invalid("%v", err)
	}
	name, err := w.endpointName(s.o.NodeName)
	if err != nil {
		return nil, invalid("%v", err)
	}
	want := map[netip.Prefix]bool{}
	for i, ip := range req.GetIps() {
		p, err := netip.ParsePrefix(strings.TrimSpace(ip))
		if err != nil {
			return nil, invalid("ips[%d] %q is not an address in CIDR form", i, ip)
		}
		want[hostPrefix(p.Addr())] = true
	}
	what := "check " + w.String()
	key := v3.Key{Kind: "WorkloadEndpoint", Namespace: w.namespace, Name: name}
	cur, err := s.o.Datastore.Get(ctx, key)
	if datastore.IsNotFound(err) {
		return &agentpb.CheckWorkloadResponse{Problems: []string{fmt.Sprintf("WorkloadEndpoint %s/%s does not exist", key.Namespace, key.Name)}}, nil
	}
	if err != nil {
		return nil, toStatus(err, what)
	}
	wep := cur.(*v3.WorkloadEndpoint)
	var problems []string
	if wep.Spec.ContainerID != w.containerID {
		problems = append(problems, fmt.Sprintf("WorkloadEndpoint %s/%s belongs to container %s, not %s", key.Namespace, key.Name, wep.Spec.ContainerID, w.containerID))
	}
	if iface := strings.TrimSpace(req.GetInterfaceName()); iface != "" && iface != wep.Spec.InterfaceName {
		problems = append(problems, fmt.Sprintf("WorkloadEndpoint %s/%s has interface %s, expected %s", key.Namespace, key.Name, wep.Spec.InterfaceName, iface))
	}
	have := map[netip.Prefix]bool{}
	for _, n := range wep.Spec.IPNetworks {
		if p, err := netip.ParsePrefix(n); err == nil {
			have[hostPrefix(p.Addr())] = true
		}
	}
	if len(want) > 0 && !maps.Equal(want, have) {
		problems = append(problems, fmt.Sprintf("WorkloadEndpoint %s/%s has addresses %s, expected %s", key.Namespace, key.Name, prefixList(have), prefixList(want)))
	}
	if handle := strings.TrimSpace(req.GetHandleId()); handle != "" {
		held, err := s.o.IPAM.IPsByHandle(ctx, handle)
		if err != nil {
			return nil, toStatus(err, what)
		}
		for p := range want {
			if !slices.Contains(held, p.Addr()) {
				problems = append(problems, fmt.Sprintf("address %s is not allocated to handle %s", p.Addr(), handle))
			}
		}
	}
	problems = append(problems, s.o.Dataplane.CheckWorkload(wep)...)
	return &agentpb.CheckWorkloadResponse{Problems: problems}, nil
}

func prefixList(set map[netip.Prefix]bool) string {
	var out []string
	for p := range set {
		out = append(out, p.String())
	}
	slices.Sort(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

// gcGrace is how old an allocation without an endpoint must be before GC
// releases it: a CNI ADD allocates (AssignIPs) and writes its endpoint
// (AddWorkload) in two calls, and between them the allocation looks like
// the leftover of a dead ADD. Calico's plugin uses the same timestamp
// attribute to tell the two apart.
const gcGrace = time.Minute

// pendingMaxAge bounds how long an AssignIPs without its AddWorkload keeps
// the handle from GC on the agent's own word: longer than any CNI ADD runs,
// so the addresses of an ADD that died are still collected eventually.
const pendingMaxAge = 10 * time.Minute

// GarbageCollect removes this node's endpoints and releases its pod
// handles whose container is not among the valid attachments. The runtime
// does not run GC concurrently with ADD for the same attachments (CNI spec),
// and the agent's lock keeps its own calls out; but an ADD between its
// AssignIPs and its AddWorkload holds no lock, so a handle whose container
// has no endpoint is kept while it is younger than gcGrace (by its
// timestamp attribute) or the agent assigned it and has not seen its
// AddWorkload yet (pending, bounded by pendingMaxAge).
func (s *Server) GarbageCollect(ctx context.Context, req *agentpb.GarbageCollectRequest) (*agentpb.GarbageCollectResponse, error) {
	validEndpoint := map[[2]string]bool{}
	validContainer := map[string]bool{}
	for i, v := range req.GetValid() {
		cid := strings.TrimSpace(v.GetContainerId())
		if cid == "" {
			return nil, invalid("valid[%d] has no container_id", i)
		}
		validContainer[cid] = true
		validEndpoint[[2]string{cid, strings.TrimSpace(v.GetEndpoint())}] = true
	}
	unlock, err := s.lockAll(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()

	list, err := s.o.Datastore.List(ctx, "WorkloadEndpoint", "")
	if err != nil {
		return nil, toStatus(err, "garbage collect: list workload endpoints")
	}
	var errs []error
	// Containers whose ADD got as far as writing an endpoint: their handles
	// are not in flight, whatever their age.
	hadEndpoint := map[string]bool{}
	for _, item := range list.Items {
		wep := item.(*v3.WorkloadEndpoint)
		if wep.Spec.Node == s.o.NodeName {
			hadEndpoint[wep.Spec.ContainerID] = true
		}
		// A valid attachment without an interface name keeps every
		// endpoint of its container.
		if wep.Spec.Node != s.o.NodeName || validEndpoint[[2]string{wep.Spec.ContainerID, wep.Spec.Endpoint}] ||
			validEndpoint[[2]string{wep.Spec.ContainerID, ""}] {
			continue
		}
		if _, err := s.deleteEndpointLocked(ctx, v3.KeyOf(wep), wep.Spec.ContainerID); err != nil {
			errs = append(errs, fmt.Errorf("endpoint %s/%s: %w", wep.Namespace, wep.Name, err))
		}
	}

	report, err := s.o.IPAM.Check(ctx)
	if err != nil {
		return nil, toStatus(err, "garbage collect: read IPAM allocations")
	}
	// The youngest allocation of each of this node's pod handles; an
	// unreadable or missing timestamp counts as old.
	youngest := map[string]time.Time{}
	var handles []string
	for _, a := range report.Allocations {
		if a.Node != s.o.NodeName || !strings.HasPrefix(a.Handle, HandlePrefix) {
			continue
		}
		t, _ := ipam.ParseTimestamp(a.CreationTimestamp)
		prev, seen := youngest[a.Handle]
		if !seen {
			handles = append(handles, a.Handle)
		}
		if !seen || t.After(prev) {
			youngest[a.Handle] = t
		}
	}
	resp := &agentpb.GarbageCollectResponse{}
	var kept []string
	for _, h := range handles {
		cid := strings.TrimPrefix(h, HandlePrefix)
		if validContainer[cid] {
			continue
		}
		if !hadEndpoint[cid] && (s.inFlight(h) || youngest[h].After(report.GeneratedAt.Add(-gcGrace))) {
			kept = append(kept, h)
			continue
		}
		if _, err := s.releaseHandleLocked(ctx, h); err != nil {
			errs = append(errs, fmt.Errorf("handle %s: %w", h, err))
			continue
		}
		s.donePending(h)
		resp.ReleasedHandles = append(resp.ReleasedHandles, h)
	}
	slices.Sort(resp.ReleasedHandles)
	if err := errors.Join(errs...); err != nil {
		return resp, toStatus(err, "garbage collect")
	}
	s.log.Info("garbage collection done", "valid", len(req.GetValid()), "released", resp.ReleasedHandles, "kept_in_flight", kept)
	return resp, nil
}

// Status reports who this agent is and how it is.
func (s *Server) Status(ctx context.Context, _ *agentpb.StatusRequest) (*agentpb.StatusResponse, error) {
	resp := &agentpb.StatusResponse{
		NodeName:    s.o.NodeName,
		Version:     s.o.Version,
		Mtu:         int32(s.mtu()),
		StartedUnix: s.started.Unix(),
	}
	if s.o.Health != nil {
		resp.Live, resp.Ready = s.o.Health()
	}
	if s.o.BGP != nil {
		resp.BgpState = s.o.BGP.State()
		resp.Peers = s.o.BGP.Peers(ctx)
	}
	return resp, nil
}

func (s *Server) mtu() int {
	if s.o.MTU == nil {
		return 0
	}
	return s.o.MTU()
}
