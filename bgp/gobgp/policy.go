package gobgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// policyState is the filter generation in force.
type policyState struct {
	gen      int
	key      string
	shape    policyShape
	setNames []string // defined sets of this generation, for deletion
}

// policyShape is everything the filters are built from, normalized.
type policyShape struct {
	pools4, pools6 []netip.Prefix
	own4, own6     []netip.Prefix
	internal       []netip.Addr // cluster-internal peers
	reflector      bool         // some peer is our route reflector client
}

func (p policyShape) key() string {
	var b strings.Builder
	for _, l := range [][]netip.Prefix{p.pools4, p.pools6, p.own4, p.own6} {
		for _, x := range l {
			b.WriteString(x.String())
			b.WriteByte(',')
		}
		b.WriteByte('|')
	}
	for _, a := range p.internal {
		b.WriteString(a.String())
		b.WriteByte(',')
	}
	fmt.Fprintf(&b, "|%v", p.reflector)
	return b.String()
}

func normPrefixes(in []netip.Prefix, v6 bool) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range in {
		if !p.IsValid() || p.Addr().Is6() != v6 {
			continue
		}
		out = append(out, p.Masked())
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].Addr().Compare(out[j].Addr()); c != 0 {
			return c < 0
		}
		return out[i].Bits() < out[j].Bits()
	})
	return slices.Compact(out)
}

func shapeOf(d desiredState) policyShape {
	s := policyShape{
		pools4: normPrefixes(d.policy.Pools, false),
		pools6: normPrefixes(d.policy.Pools, true),
		own4:   normPrefixes(d.policy.OwnBlocks, false),
		own6:   normPrefixes(d.policy.OwnBlocks, true),
	}
	for _, p := range d.peers {
		if p.ClusterInternal {
			s.internal = append(s.internal, p.Address)
		}
		if p.RouteReflectorClient && p.ConfigError == "" {
			s.reflector = true
		}
	}
	sort.Slice(s.internal, func(i, j int) bool { return s.internal[i].Less(s.internal[j]) })
	s.internal = slices.Compact(s.internal)
	return s
}

// builtPolicy is one generation's GoBGP objects.
type builtPolicy struct {
	sets            []*api.DefinedSet
	import_, export *api.Policy
}

var (
	familyV4 = apiutil.ToApiFamily(bgp.AFI_IP, bgp.SAFI_UNICAST)
	familyV6 = apiutil.ToApiFamily(bgp.AFI_IP6, bgp.SAFI_UNICAST)
)

func accept() *api.Actions { return &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT} }
func reject() *api.Actions { return &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT} }

// buildPolicy turns a shape into GoBGP defined sets and two policies.
// Statements referencing a set are only emitted when the set is not empty:
// GoBGP treats an empty set in an ANY match as "match everything".
func buildPolicy(gen int, s policyShape) builtPolicy {
	prefix := fmt.Sprintf("tabby-%d-", gen)
	var b builtPolicy
	addPrefixSet := func(name string, list []netip.Prefix, own bool) string {
		if len(list) == 0 {
			return ""
		}
		ds := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: prefix + name}
		for _, p := range list {
			host := uint32(p.Addr().BitLen())
			lo, hi := uint32(p.Bits()), host
			if own {
				// The block itself and anything inside it but host routes:
				// those are addresses other nodes borrowed from the block.
				hi = max(lo, host-1)
			}
			ds.Prefixes = append(ds.Prefixes, &api.Prefix{IpPrefix: p.String(), MaskLengthMin: lo, MaskLengthMax: hi})
		}
		b.sets = append(b.sets, ds)
		return ds.Name
	}
	pools4 := addPrefixSet("pools4", s.pools4, false)
	pools6 := addPrefixSet("pools6", s.pools6, false)
	own4 := addPrefixSet("own4", s.own4, true)
	own6 := addPrefixSet("own6", s.own6, true)
	internal := ""
	if len(s.internal) > 0 {
		ds := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: prefix + "internal"}
		for _, a := range s.internal {
			ds.List = append(ds.List, netip.PrefixFrom(a, a.BitLen()).String())
		}
		b.sets = append(b.sets, ds)
		internal = ds.Name
	}
	anySet := func(name string) *api.MatchSet { return &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: name} }

	var imp []*api.Statement
	addImp := func(c *api.Conditions, a *api.Actions) {
		imp = append(imp, &api.Statement{Name: fmt.Sprintf("%simport-%d", prefix, len(imp)), Conditions: c, Actions: a})
	}
	// GoBGP runs the global import policy on locally originated paths too.
	addImp(&api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL}, accept())
	for _, own := range []string{own4, own6} {
		if own != "" {
			addImp(&api.Conditions{PrefixSet: anySet(own)}, reject())
		}
	}
	if internal != "" {
		for _, f := range []struct {
			pools  string
			family *api.Family
		}{{pools4, familyV4}, {pools6, familyV6}} {
			if f.pools != "" {
				addImp(&api.Conditions{NeighborSet: anySet(internal), PrefixSet: &api.MatchSet{Type: api.MatchSet_TYPE_INVERT, Name: f.pools}}, reject())
			} else {
				// No pool of this family: nothing of it may come from a node.
				addImp(&api.Conditions{NeighborSet: anySet(internal), AfiSafiIn: []*api.Family{f.family}}, reject())
			}
		}
	}

	var exp []*api.Statement
	addExp := func(c *api.Conditions, a *api.Actions) {
		exp = append(exp, &api.Statement{Name: fmt.Sprintf("%sexport-%d", prefix, len(exp)), Conditions: c, Actions: a})
	}
	addExp(&api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL}, accept())
	if s.reflector && internal != "" {
		for _, pools := range []string{pools4, pools6} {
			if pools != "" {
				addExp(&api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_INTERNAL, NeighborSet: anySet(internal), PrefixSet: anySet(pools)}, accept())
			}
		}
	}
	b.import_ = &api.Policy{Name: prefix + "import", Statements: imp}
	b.export = &api.Policy{Name: prefix + "export", Statements: exp}
	return b
}

// applyPolicy installs the filters for d if they changed: new generation
// first, atomic switch of the global assignments, then removal of the old
// generation, then a soft reset so routes already received or sent are
// judged again.
func (s *Speaker) applyPolicy(ctx context.Context, d desiredState) error {
	srv := s.srvHandle()
	if srv == nil {
		return fmt.Errorf("speaker not started")
	}
	shape := shapeOf(d)
	key := shape.key()
	old := s.applied.policy
	if old.gen > 0 && old.key == key {
		return nil
	}
	gen := old.gen + 1
	b := buildPolicy(gen, shape)
	var created []string
	cleanup := func() {
		for _, name := range []string{b.import_.Name, b.export.Name} {
			_ = srv.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: name}, All: true})
		}
		for _, ds := range b.sets {
			if slices.Contains(created, ds.Name) {
				_ = srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: &api.DefinedSet{DefinedType: ds.DefinedType, Name: ds.Name}, All: true})
			}
		}
	}
	for _, ds := range b.sets {
		if err := srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: ds}); err != nil {
			cleanup()
			return fmt.Errorf("add defined set %s: %w", ds.Name, err)
		}
		created = append(created, ds.Name)
	}
	for _, p := range []*api.Policy{b.import_, b.export} {
		if err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: p}); err != nil {
			cleanup()
			return fmt.Errorf("add policy %s: %w", p.Name, err)
		}
	}
	assign := func(dir api.PolicyDirection, p *api.Policy, def api.RouteAction) error {
		return srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
			Name: "global", Direction: dir, Policies: []*api.Policy{{Name: p.Name}}, DefaultAction: def,
		}})
	}
	if err := assign(api.PolicyDirection_POLICY_DIRECTION_IMPORT, b.import_, api.RouteAction_ROUTE_ACTION_ACCEPT); err != nil {
		cleanup()
		return fmt.Errorf("assign import policy: %w", err)
	}
	if err := assign(api.PolicyDirection_POLICY_DIRECTION_EXPORT, b.export, api.RouteAction_ROUTE_ACTION_REJECT); err != nil {
		// The import side already switched; the old export policy is
		// still assigned, so keep the old generation and retry later.
		return fmt.Errorf("assign export policy: %w", err)
	}
	s.applied.policy = policyState{gen: gen, key: key, shape: shape}
	s.policyGen.Add(1)
	for _, ds := range b.sets {
		s.applied.policy.setNames = append(s.applied.policy.setNames, ds.Name)
	}
	if old.gen > 0 {
		prefix := fmt.Sprintf("tabby-%d-", old.gen)
		for _, name := range []string{prefix + "import", prefix + "export"} {
			if err := srv.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: name}, All: true}); err != nil {
				s.log.Warn("delete old BGP policy", "policy", name, "error", err)
			}
		}
		for _, name := range old.setNames {
			typ := api.DefinedType_DEFINED_TYPE_PREFIX
			if strings.HasSuffix(name, "-internal") {
				typ = api.DefinedType_DEFINED_TYPE_NEIGHBOR
			}
			if err := srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: &api.DefinedSet{DefinedType: typ, Name: name}, All: true}); err != nil {
				s.log.Warn("delete old BGP defined set", "set", name, "error", err)
			}
		}
	}
	s.log.Info("BGP filters installed", "generation", gen, "pools", len(shape.pools4)+len(shape.pools6),
		"ownBlocks", len(shape.own4)+len(shape.own6), "clusterPeers", len(shape.internal), "reflector", shape.reflector)

	if old.gen == 0 {
		return nil
	}
	in, out := resetNeeded(old.shape, shape)
	dir := api.ResetPeerRequest_DIRECTION_UNSPECIFIED
	switch {
	case in && out:
		dir = api.ResetPeerRequest_DIRECTION_BOTH
	case in:
		dir = api.ResetPeerRequest_DIRECTION_IN
	case out:
		dir = api.ResetPeerRequest_DIRECTION_OUT
	default:
		return nil
	}
	if len(s.applied.peers) == 0 {
		return nil
	}
	if err := srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: "all", Soft: true, Direction: dir}); err != nil {
		return fmt.Errorf("re-evaluate routes under new filters (soft reset): %w", err)
	}
	return nil
}

// resetNeeded says which directions must be re-evaluated after a filter
// change. Adding or removing a cluster peer alone needs nothing: a new
// peer has sent nothing yet, a removed one's routes are gone.
func resetNeeded(old, cur policyShape) (in, out bool) {
	poolsChanged := !slices.Equal(old.pools4, cur.pools4) || !slices.Equal(old.pools6, cur.pools6)
	ownChanged := !slices.Equal(old.own4, cur.own4) || !slices.Equal(old.own6, cur.own6)
	in = poolsChanged || ownChanged
	out = poolsChanged || old.reflector != cur.reflector
	return in, out
}
