package ipam

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

// ReportVersion is the format version of Report; ReleaseFromReport refuses
// other versions.
const ReportVersion = 1

// Report is the result of Check, written by `calicoctl ipam check -o`. Its
// JSON field names are stable.
type Report struct {
	Version     int       `json:"version"`
	GeneratedAt time.Time `json:"generatedAt"`
	// Pools are the enabled pools' CIDRs.
	Pools  []string      `json:"pools"`
	Blocks []ReportBlock `json:"blocks"`
	// Allocations lists every allocated address; InUse false means leaked.
	Allocations []ReportAllocation `json:"allocations"`
	// Missing lists addresses a workload or node uses with no allocation.
	Missing []ReportInUse `json:"missing"`
	// OrphanedBlocks are blocks affine to a node that does not exist.
	OrphanedBlocks []ReportBlock `json:"orphanedBlocks"`
	// OrphanedAffinities are affinities of nodes that do not exist, or that
	// do not match their block.
	OrphanedAffinities []ReportAffinity `json:"orphanedAffinities"`
	// LeakedHandles count addresses none of which exist.
	LeakedHandles []ReportHandle `json:"leakedHandles"`
	// MissingHandles are named by allocations but have no handle record.
	MissingHandles []ReportHandle `json:"missingHandles"`
	// HandleMismatches count a different number of addresses than the
	// blocks hold.
	HandleMismatches []ReportHandle `json:"handleMismatches"`
	// MalformedBlocks are block records that cannot be used safely; no
	// address is allocated from them.
	MalformedBlocks []ReportMalformed `json:"malformedBlocks"`
}

type ReportMalformed struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

type ReportBlock struct {
	CIDR     string `json:"cidr"`
	Affinity string `json:"affinity,omitempty"`
	InUse    int    `json:"inUse"`
	Total    int    `json:"total"`
	Reason   string `json:"reason,omitempty"`
}

type ReportAllocation struct {
	IP                string   `json:"ip"`
	Block             string   `json:"block"`
	Handle            string   `json:"handle,omitempty"`
	SequenceNumber    uint64   `json:"sequenceNumber"`
	Node              string   `json:"node,omitempty"`
	Namespace         string   `json:"namespace,omitempty"`
	Pod               string   `json:"pod,omitempty"`
	Type              string   `json:"type,omitempty"`
	CreationTimestamp string   `json:"creationTimestamp,omitempty"`
	InUse             bool     `json:"inUse"`
	Borrowed          bool     `json:"borrowed,omitempty"`
	Owners            []string `json:"owners"`
	Reason            string   `json:"reason,omitempty"`
}

type ReportInUse struct {
	IP     string `json:"ip"`
	Owner  string `json:"owner"`
	InPool bool   `json:"inPool"`
}

type ReportAffinity struct {
	Name   string `json:"name"`
	Node   string `json:"node"`
	CIDR   string `json:"cidr"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

type ReportHandle struct {
	HandleID        string `json:"handleID"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
	Counted         int    `json:"counted"`
	Actual          int    `json:"actual"`
}

// Leaked returns the allocations not in use.
func (r *Report) Leaked() []ReportAllocation {
	var out []ReportAllocation
	for _, a := range r.Allocations {
		if !a.InUse {
			out = append(out, a)
		}
	}
	return out
}

// Problems counts everything the report found wrong.
func (r *Report) Problems() int {
	return len(r.Leaked()) + len(r.Missing) + len(r.OrphanedBlocks) + len(r.OrphanedAffinities) +
		len(r.LeakedHandles) + len(r.MissingHandles) + len(r.HandleMismatches) + len(r.MalformedBlocks)
}

// owners indexes who uses addresses: workload endpoints (by container ID, by
// namespace/pod and by address) and nodes (by name and tunnel address).
type owners struct {
	byContainer map[string][]string
	byPod       map[string][]string
	byIP        map[netip.Addr][]string
	nodes       map[string]bool
}

func parseAddrOrPrefix(s string) (netip.Addr, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}

func nodeTunnelAddrs(n *v3.Node) []string {
	var out []string
	if n.Spec.BGP != nil {
		out = append(out, n.Spec.BGP.IPv4IPIPTunnelAddr)
	}
	return append(out, n.Spec.IPv4VXLANTunnelAddr, n.Spec.IPv6VXLANTunnelAddr)
}

func buildOwners(weps []*v3.WorkloadEndpoint, nodes []*v3.Node) owners {
	o := owners{byContainer: map[string][]string{}, byPod: map[string][]string{}, byIP: map[netip.Addr][]string{}, nodes: map[string]bool{}}
	for _, w := range weps {
		name := fmt.Sprintf("Workload(%s/%s)", w.Namespace, w.Name)
		if w.Spec.ContainerID != "" {
			o.byContainer[w.Spec.ContainerID] = append(o.byContainer[w.Spec.ContainerID], name)
		}
		if w.Spec.Pod != "" {
			k := w.Namespace + "/" + w.Spec.Pod
			o.byPod[k] = append(o.byPod[k], name)
		}
		for _, s := range w.Spec.IPNetworks {
			if a, ok := parseAddrOrPrefix(s); ok {
				o.byIP[a] = append(o.byIP[a], name)
			}
		}
	}
	for _, n := range nodes {
		o.nodes[n.Name] = true
		for _, s := range nodeTunnelAddrs(n) {
			if a, ok := parseAddrOrPrefix(s); ok && s != "" {
				o.byIP[a] = append(o.byIP[a], fmt.Sprintf("Node(%s)", n.Name))
			}
		}
	}
	return o
}

// of says who uses an allocation: the workload whose container the handle
// names, the workload of its namespace/pod attributes, or whoever lists the
// address. No owner means leaked, and reason says why.
func (o owners) of(ip netip.Addr, handle string, attrs map[string]string) (who []string, reason string) {
	if _, cid, ok := strings.Cut(handle, "."); ok && cid != "" {
		who = append(who, o.byContainer[cid]...)
	}
	if ns, pod := attrs[AttributeNamespace], attrs[AttributePod]; len(who) == 0 && ns != "" && pod != "" {
		who = append(who, o.byPod[ns+"/"+pod]...)
	}
	for _, w := range o.byIP[ip] {
		if !slices.Contains(who, w) {
			who = append(who, w)
		}
	}
	if len(who) > 0 {
		return who, ""
	}
	switch {
	case strings.HasPrefix(handle, "k8s-pod-network."):
		return nil, "no workload endpoint has container " + strings.TrimPrefix(handle, "k8s-pod-network.")
	case attrs[AttributePod] != "":
		return nil, fmt.Sprintf("no workload endpoint for pod %s/%s", attrs[AttributeNamespace], attrs[AttributePod])
	default:
		return nil, "no workload endpoint or node uses the address"
	}
}

// Check compares the IPAM records with the workload endpoints and nodes
// (Calico's `ipam check`). It only reads.
func (m *IPAM) Check(ctx context.Context) (*Report, error) {
	// Empty lists, not null, so that consumers of the JSON need no special case.
	r := &Report{Version: ReportVersion, GeneratedAt: m.now().UTC(), Pools: []string{}, Blocks: []ReportBlock{},
		Allocations: []ReportAllocation{}, Missing: []ReportInUse{}, OrphanedBlocks: []ReportBlock{},
		OrphanedAffinities: []ReportAffinity{}, LeakedHandles: []ReportHandle{}, MissingHandles: []ReportHandle{},
		HandleMismatches: []ReportHandle{}, MalformedBlocks: []ReportMalformed{}}
	blocks, bad, err := m.listAllBlocks(ctx)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	for _, b := range bad {
		r.MalformedBlocks = append(r.MalformedBlocks, ReportMalformed{Name: b.name, Reason: b.err.Error()})
	}
	slices.SortFunc(blocks, func(a, b *blockState) int { return comparePrefix(a.prefix, b.prefix) })
	pools, err := m.loadPools(ctx)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	nodes, err := listAs[*v3.Node](ctx, m.ds, "Node", "")
	if err != nil {
		return nil, fmt.Errorf("check: list nodes: %w", err)
	}
	weps, err := listAs[*v3.WorkloadEndpoint](ctx, m.ds, "WorkloadEndpoint", "")
	if err != nil {
		return nil, fmt.Errorf("check: list workload endpoints: %w", err)
	}
	handles, err := listAs[*v3.IPAMHandle](ctx, m.ds, "IPAMHandle", "")
	if err != nil {
		return nil, fmt.Errorf("check: list handles: %w", err)
	}
	affs, err := m.listAffinities(ctx)
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	own := buildOwners(weps, nodes)
	affByName := map[string]*v3.BlockAffinity{}
	for _, a := range affs {
		affByName[a.Name] = a
	}

	var enabled []pool
	for _, p := range pools {
		if !p.disabled {
			enabled = append(enabled, p)
			r.Pools = append(r.Pools, p.cidr.String())
		}
	}

	// Allocations, and what the blocks say each handle holds.
	allocated := map[netip.Addr]bool{}
	actual := map[string]map[string]int{} // handle -> block -> count
	blockByName := map[string]*blockState{}
	for _, b := range blocks {
		blockByName[b.rec.Name] = b
		aff := ""
		if b.rec.Spec.Affinity != nil {
			aff = *b.rec.Spec.Affinity
		}
		rb := ReportBlock{CIDR: b.prefix.String(), Affinity: aff, InUse: b.inUse(), Total: b.size()}
		r.Blocks = append(r.Blocks, rb)
		if n := b.owner(); n != "" && !own.nodes[n] {
			rb.Reason = fmt.Sprintf("node %q does not exist", n)
			r.OrphanedBlocks = append(r.OrphanedBlocks, rb)
		} else if n != "" && affByName[affinityName(n, b.prefix)] == nil {
			rb.Reason = fmt.Sprintf("node %q has no affinity record for it", n)
			r.OrphanedBlocks = append(r.OrphanedBlocks, rb)
		}
		for ord := range b.rec.Spec.Allocations {
			if b.rec.Spec.Allocations[ord] == nil {
				continue
			}
			a := allocationAt(b, ord)
			allocated[a.Addr] = true
			if a.HandleID != "" {
				if actual[a.HandleID] == nil {
					actual[a.HandleID] = map[string]int{}
				}
				actual[a.HandleID][b.prefix.String()]++
			}
			who, reason := own.of(a.Addr, a.HandleID, a.Attrs)
			r.Allocations = append(r.Allocations, ReportAllocation{
				IP: a.Addr.String(), Block: b.prefix.String(), Handle: a.HandleID, SequenceNumber: a.SequenceNumber,
				Node: a.Attrs[AttributeNode], Namespace: a.Attrs[AttributeNamespace], Pod: a.Attrs[AttributePod],
				Type: a.Attrs[AttributeType], CreationTimestamp: a.Attrs[AttributeTimestamp],
				InUse: len(who) > 0, Borrowed: a.Borrowed, Owners: who, Reason: reason,
			})
		}
	}

	// Addresses in use without an allocation.
	for _, ip := range slices.SortedFunc(maps.Keys(own.byIP), netip.Addr.Compare) {
		if allocated[ip] {
			continue
		}
		_, inPool := poolFor(enabled, ip)
		for _, w := range own.byIP[ip] {
			r.Missing = append(r.Missing, ReportInUse{IP: ip.String(), Owner: w, InPool: inPool})
		}
	}

	// Affinities that do not describe a block their node owns.
	for _, a := range affs {
		ra := ReportAffinity{Name: a.Name, Node: a.Spec.Node, CIDR: a.Spec.CIDR, State: string(a.Spec.State)}
		p, err := affinityPrefix(a)
		switch {
		case !own.nodes[a.Spec.Node]:
			ra.Reason = fmt.Sprintf("node %q does not exist", a.Spec.Node)
		case err != nil:
			ra.Reason = err.Error()
		default:
			b := blockByName[blockName(p)]
			switch {
			case b == nil && a.Spec.State == v3.AffinityStatePending:
				ra.Reason = "pending claim without a block (in progress, or interrupted: the node's next assignment finishes or drops it)"
			case b == nil:
				ra.Reason = "block does not exist"
			case isHostAffinity(a) && !b.affineTo(a.Spec.Node):
				ra.Reason = fmt.Sprintf("block is affine to %q", b.owner())
			case a.Spec.State == v3.AffinityStatePendingDeletion:
				ra.Reason = "release interrupted (ReleaseHostAffinities finishes it)"
			case a.Spec.State == v3.AffinityStatePending:
				ra.Reason = "claim not confirmed (in progress, or interrupted: the node's next assignment confirms it)"
			}
		}
		if ra.Reason != "" {
			r.OrphanedAffinities = append(r.OrphanedAffinities, ra)
		}
	}

	// Handles against the blocks.
	recorded := map[string]bool{}
	for _, h := range handles {
		recorded[h.Spec.HandleID] = true
		counted, real := 0, 0
		for _, n := range h.Spec.Block {
			counted += n
		}
		for _, n := range actual[h.Spec.HandleID] {
			real += n
		}
		rh := ReportHandle{HandleID: h.Spec.HandleID, ResourceVersion: h.ResourceVersion, Counted: counted, Actual: real}
		switch {
		case real == 0:
			r.LeakedHandles = append(r.LeakedHandles, rh)
		case !maps.Equal(h.Spec.Block, actual[h.Spec.HandleID]):
			r.HandleMismatches = append(r.HandleMismatches, rh)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(actual)) {
		if !recorded[id] {
			real := 0
			for _, n := range actual[id] {
				real += n
			}
			r.MissingHandles = append(r.MissingHandles, ReportHandle{HandleID: id, Actual: real})
		}
	}
	slices.SortFunc(r.LeakedHandles, func(a, b ReportHandle) int { return cmp.Compare(a.HandleID, b.HandleID) })
	slices.SortFunc(r.HandleMismatches, func(a, b ReportHandle) int { return cmp.Compare(a.HandleID, b.HandleID) })
	slices.SortFunc(r.OrphanedAffinities, func(a, b ReportAffinity) int { return cmp.Compare(a.Name, b.Name) })
	return r, nil
}

// TimestampLayout is how the timestamp attribute is written: Calico's CNI
// plugin (and AutoAssign here) store time.Now().UTC().String().
const TimestampLayout = "2006-01-02 15:04:05.999999999 -0700 MST"

// ParseTimestamp reads an allocation's timestamp attribute; ok is false when
// it is missing or not in TimestampLayout (RFC 3339 is accepted too).
func ParseTimestamp(s string) (t time.Time, ok bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{TimestampLayout, time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// DefaultReleaseGrace is how long before a report's generation an address
// must have been allocated for ReleaseFromReport to free it: a CNI ADD
// allocates first and writes its WorkloadEndpoint a moment later, so a
// younger allocation without an owner is most likely an ADD in flight.
const DefaultReleaseGrace = time.Minute

// ReportReleaseOptions tunes ReleaseFromReport.
type ReportReleaseOptions struct {
	// Force releases leaked addresses however young they are.
	Force bool
	// Grace overrides DefaultReleaseGrace when positive.
	Grace time.Duration
}

// ReportReleaseResult says what ReleaseFromReport did.
type ReportReleaseResult struct {
	Released       []netip.Addr // leaked addresses freed
	TooNew         []netip.Addr // allocated within the grace period before the report: left alone unless forced
	AlreadyFree    []netip.Addr // no longer allocated
	Changed        []netip.Addr // re-assigned or re-owned since the report: left alone
	StillInUse     []netip.Addr // an owner appeared since the report: left alone
	DeletedHandles []string     // leaked handle records deleted
	KeptHandles    []string     // handle records changed since the report: left alone
}

// ReleaseFromReport frees exactly the leaked addresses of a report (and
// deletes its leaked handle records). Right before each release it looks
// for an owner again, and it releases by handle and sequence number, so an
// address that was re-assigned after the report is never touched. Unless
// o.Force is set, addresses allocated less than the grace period before the
// report was generated are left alone (TooNew): their ADD may not have
// written its endpoint yet. An allocation without a readable timestamp
// is judged old.
func (m *IPAM) ReleaseFromReport(ctx context.Context, r *Report, o ReportReleaseOptions) (ReportReleaseResult, error) {
	var res ReportReleaseResult
	if r == nil || r.Version != ReportVersion {
		return res, fmt.Errorf("release from report: unsupported report version (want %d)", ReportVersion)
	}
	grace := o.Grace
	if grace <= 0 {
		grace = DefaultReleaseGrace
	}
	cutoff := r.GeneratedAt.Add(-grace)
	byNS := map[string][]ReportAllocation{}
	for _, a := range r.Leaked() {
		if ts, ok := ParseTimestamp(a.CreationTimestamp); ok && !o.Force && ts.After(cutoff) {
			ip, err := netip.ParseAddr(a.IP)
			if err != nil {
				return res, fmt.Errorf("release from report: invalid address %q", a.IP)
			}
			res.TooNew = append(res.TooNew, ip)
			continue
		}
		byNS[a.Namespace] = append(byNS[a.Namespace], a)
	}
	for _, ns := range slices.Sorted(maps.Keys(byNS)) {
		// Fresh owners, read right before releasing this group.
		weps, err := listAs[*v3.WorkloadEndpoint](ctx, m.ds, "WorkloadEndpoint", "")
		if err != nil {
			return res, fmt.Errorf("release from report: list workload endpoints: %w", err)
		}
		nodes, err := listAs[*v3.Node](ctx, m.ds, "Node", "")
		if err != nil {
			return res, fmt.Errorf("release from report: list nodes: %w", err)
		}
		own := buildOwners(weps, nodes)
		var opts []ReleaseOptions
		for _, a := range byNS[ns] {
			ip, err := netip.ParseAddr(a.IP)
			if err != nil {
				return res, fmt.Errorf("release from report: invalid address %q", a.IP)
			}
			attrs := map[string]string{AttributeNamespace: a.Namespace, AttributePod: a.Pod}
			if who, _ := own.of(ip, a.Handle, attrs); len(who) > 0 {
				res.StillInUse = append(res.StillInUse, ip)
				continue
			}
			seq := a.SequenceNumber
			opts = append(opts, ReleaseOptions{Addr: ip, HandleID: a.Handle, SequenceNumber: &seq})
		}
		if len(opts) == 0 {
			continue
		}
		rr, err := m.Release(ctx, opts...)
		res.Released = append(res.Released, rr.Released...)
		res.AlreadyFree = append(res.AlreadyFree, rr.Unallocated...)
		res.Changed = append(res.Changed, rr.Stale...)
		if err != nil {
			return res, fmt.Errorf("release from report: %w", err)
		}
	}
	for _, h := range r.LeakedHandles {
		deleted, err := m.deleteLeakedHandle(ctx, h)
		if err != nil {
			return res, fmt.Errorf("release from report: %w", err)
		}
		if deleted {
			res.DeletedHandles = append(res.DeletedHandles, h.HandleID)
		} else {
			res.KeptHandles = append(res.KeptHandles, h.HandleID)
		}
	}
	return res, nil
}

// deleteLeakedHandle deletes a handle record if it is unchanged since the
// report and still holds no address.
func (m *IPAM) deleteLeakedHandle(ctx context.Context, rh ReportHandle) (bool, error) {
	h, err := getAs[*v3.IPAMHandle](ctx, m.ds, handleKey(handleName(rh.HandleID)))
	if datastore.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read handle %q: %w", rh.HandleID, err)
	}
	if h.ResourceVersion != rh.ResourceVersion {
		return false, nil
	}
	for key := range h.Spec.Block {
		p, err := netip.ParsePrefix(key)
		if err != nil {
			continue
		}
		b, err := m.getBlock(ctx, blockName(p))
		if datastore.IsNotFound(err) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("read block %s: %w", p, err)
		}
		if b.countByHandle()[rh.HandleID] > 0 {
			return false, nil
		}
	}
	_, err = m.ds.Delete(ctx, handleKey(h.Name), h.ResourceVersion)
	if datastore.IsConflict(err) || datastore.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("delete handle %q: %w", rh.HandleID, err)
	}
	return true, nil
}
