package resourcemgr

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	v3 "github.com/tabbynet/tabby/api/v3"
)

// Lookup answers the questions a column cannot answer from the resource it
// is printing. It is called lazily, at most once per question per print.
type Lookup interface {
	// DefaultASNumber is the cluster-wide AS number nodes inherit: the
	// "default" BGPConfiguration's asNumber, 64512 when that is unset or
	// missing, "unknown" when the datastore cannot say.
	DefaultASNumber() string
}

// columnFunc renders one cell.
type columnFunc func(r v3.Resource, lk *lazyLookup) string

// table is the table layout of one kind, as Calico's calicoctl prints it.
type table struct {
	narrow  []string
	wide    []string
	columns map[string]columnFunc
}

// The layouts follow Calico's calicoctl resourcemgr definitions, so scripts
// that scrape `calicoctl get` keep working.
var tables = map[string]table{
	"IPPool": {
		narrow: []string{"NAME", "CIDR", "SELECTOR"},
		wide:   []string{"NAME", "CIDR", "NAT", "IPIPMODE", "VXLANMODE", "DISABLED", "DISABLEBGPEXPORT", "SELECTOR", "ASSIGNMENTMODE"},
		columns: map[string]columnFunc{
			"NAME":             name,
			"CIDR":             pool(func(p *v3.IPPool) string { return p.Spec.CIDR }),
			"NAT":              pool(func(p *v3.IPPool) string { return strconv.FormatBool(p.Spec.NATOutgoing) }),
			"IPIPMODE":         pool(func(p *v3.IPPool) string { return encapOrNever(p.Spec.IPIPMode) }),
			"VXLANMODE":        pool(func(p *v3.IPPool) string { return encapOrNever(p.Spec.VXLANMode) }),
			"DISABLED":         pool(func(p *v3.IPPool) string { return strconv.FormatBool(p.Spec.Disabled) }),
			"DISABLEBGPEXPORT": pool(func(p *v3.IPPool) string { return strconv.FormatBool(p.Spec.DisableBGPExport) }),
			"SELECTOR":         pool(func(p *v3.IPPool) string { return p.Spec.NodeSelector }),
			"ASSIGNMENTMODE": pool(func(p *v3.IPPool) string {
				if p.Spec.AssignmentMode == nil {
					return string(v3.AssignmentModeAutomatic)
				}
				return string(*p.Spec.AssignmentMode)
			}),
		},
	},
	"BGPPeer": {
		narrow: []string{"NAME", "PEERIP", "NODE", "ASN"},
		wide:   []string{"NAME", "PEERIP", "NODE", "ASN"},
		columns: map[string]columnFunc{
			"NAME":   name,
			"PEERIP": peer(func(p *v3.BGPPeer) string { return p.Spec.PeerIP }),
			// A peer applies to one node, to the nodes a selector picks, or
			// to every node ("(global)").
			"NODE": peer(func(p *v3.BGPPeer) string {
				switch {
				case p.Spec.Node != "":
					return p.Spec.Node
				case p.Spec.NodeSelector != "":
					return p.Spec.NodeSelector
				}
				return "(global)"
			}),
			"ASN":          peer(func(p *v3.BGPPeer) string { return p.Spec.ASNumber.String() }),
			"PEERSELECTOR": peer(func(p *v3.BGPPeer) string { return p.Spec.PeerSelector }),
		},
	},
	"BGPConfiguration": {
		narrow: []string{"NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"},
		wide:   []string{"NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"},
		columns: map[string]columnFunc{
			"NAME":        name,
			"LOGSEVERITY": bgpConfig(func(c *v3.BGPConfiguration) string { return c.Spec.LogSeverityScreen }),
			"MESHENABLED": bgpConfig(func(c *v3.BGPConfiguration) string {
				if c.Spec.NodeToNodeMeshEnabled == nil {
					return "-"
				}
				return strconv.FormatBool(*c.Spec.NodeToNodeMeshEnabled)
			}),
			"ASNUMBER": bgpConfig(func(c *v3.BGPConfiguration) string {
				if c.Spec.ASNumber == nil {
					return "-"
				}
				return c.Spec.ASNumber.String()
			}),
		},
	},
	"Node": {
		narrow: []string{"NAME"},
		wide:   []string{"NAME", "ASN", "IPV4", "IPV6"},
		columns: map[string]columnFunc{
			"NAME": name,
			// An AS number in parentheses is inherited from the cluster's
			// BGPConfiguration rather than set on the node.
			"ASN": func(r v3.Resource, lk *lazyLookup) string {
				n, ok := r.(*v3.Node)
				if !ok || n.Spec.BGP == nil {
					return ""
				}
				if n.Spec.BGP.ASNumber != nil {
					return n.Spec.BGP.ASNumber.String()
				}
				return "(" + lk.defaultASNumber() + ")"
			},
			"IPV4": node(func(n *v3.Node) string {
				if n.Spec.BGP == nil {
					return ""
				}
				return n.Spec.BGP.IPv4Address
			}),
			"IPV6": node(func(n *v3.Node) string {
				if n.Spec.BGP == nil {
					return ""
				}
				return n.Spec.BGP.IPv6Address
			}),
		},
	},
	"FelixConfiguration": {
		narrow:  []string{"NAME"},
		wide:    []string{"NAME"},
		columns: map[string]columnFunc{"NAME": name},
	},
	"WorkloadEndpoint": {
		narrow: []string{"WORKLOAD", "NODE", "NETWORKS", "INTERFACE"},
		wide:   []string{"NAME", "WORKLOAD", "NODE", "NETWORKS", "INTERFACE", "PROFILES", "NATS"},
		columns: map[string]columnFunc{
			"NAME":      name,
			"NAMESPACE": namespace,
			"WORKLOAD": wep(func(w *v3.WorkloadEndpoint) string {
				if w.Spec.Workload != "" {
					return w.Spec.Workload
				}
				return w.Spec.Pod
			}),
			"NODE":         wep(func(w *v3.WorkloadEndpoint) string { return w.Spec.Node }),
			"ORCHESTRATOR": wep(func(w *v3.WorkloadEndpoint) string { return w.Spec.Orchestrator }),
			"NETWORKS":     wep(func(w *v3.WorkloadEndpoint) string { return strings.Join(w.Spec.IPNetworks, ",") }),
			"INTERFACE":    wep(func(w *v3.WorkloadEndpoint) string { return w.Spec.InterfaceName }),
			"PROFILES":     wep(func(w *v3.WorkloadEndpoint) string { return strings.Join(w.Spec.Profiles, ",") }),
			"NATS": wep(func(w *v3.WorkloadEndpoint) string {
				nats := make([]string, len(w.Spec.IPNATs))
				for i, n := range w.Spec.IPNATs {
					nats[i] = n.InternalIP + "->" + n.ExternalIP
				}
				return strings.Join(nats, ",")
			}),
		},
	},
	"HostEndpoint": {
		narrow: []string{"NAME", "NODE"},
		wide:   []string{"NAME", "NODE", "INTERFACE", "IPS", "PROFILES"},
		columns: map[string]columnFunc{
			"NAME":      name,
			"NODE":      hep(func(h *v3.HostEndpoint) string { return h.Spec.Node }),
			"INTERFACE": hep(func(h *v3.HostEndpoint) string { return h.Spec.InterfaceName }),
			"IPS":       hep(func(h *v3.HostEndpoint) string { return strings.Join(h.Spec.ExpectedIPs, ",") }),
			"PROFILES":  hep(func(h *v3.HostEndpoint) string { return strings.Join(h.Spec.Profiles, ",") }),
		},
	},
	"NetworkPolicy": {
		narrow: []string{"NAME", "TIER"},
		wide:   []string{"NAME", "TIER", "ORDER", "SELECTOR"},
		columns: map[string]columnFunc{
			"NAME":      name,
			"NAMESPACE": namespace,
			"TIER":      np(func(p *v3.NetworkPolicy) string { return p.Spec.Tier }),
			"ORDER":     np(func(p *v3.NetworkPolicy) string { return order(p.Spec.Order) }),
			"SELECTOR":  np(func(p *v3.NetworkPolicy) string { return p.Spec.Selector }),
		},
	},
	"GlobalNetworkPolicy": {
		narrow: []string{"NAME", "TIER"},
		wide:   []string{"NAME", "TIER", "ORDER", "SELECTOR"},
		columns: map[string]columnFunc{
			"NAME":     name,
			"TIER":     gnp(func(p *v3.GlobalNetworkPolicy) string { return p.Spec.Tier }),
			"ORDER":    gnp(func(p *v3.GlobalNetworkPolicy) string { return order(p.Spec.Order) }),
			"SELECTOR": gnp(func(p *v3.GlobalNetworkPolicy) string { return p.Spec.Selector }),
		},
	},
	"NetworkSet": {
		narrow: []string{"NAME"},
		wide:   []string{"NAME", "NETS"},
		columns: map[string]columnFunc{
			"NAME":      name,
			"NAMESPACE": namespace,
			"NETS": func(r v3.Resource, _ *lazyLookup) string {
				if s, ok := r.(*v3.NetworkSet); ok {
					return joinAndTruncate(s.Spec.Nets, ",", 80)
				}
				return ""
			},
		},
	},
	"GlobalNetworkSet": {
		narrow: []string{"NAME"},
		wide:   []string{"NAME", "NETS"},
		columns: map[string]columnFunc{
			"NAME": name,
			"NETS": func(r v3.Resource, _ *lazyLookup) string {
				if s, ok := r.(*v3.GlobalNetworkSet); ok {
					return joinAndTruncate(s.Spec.Nets, ",", 80)
				}
				return ""
			},
		},
	},
	"IPAMConfiguration": {
		narrow: []string{"NAME", "STRICTAFFINITY", "AUTOALLOCATEBLOCKS"},
		wide:   []string{"NAME", "STRICTAFFINITY", "AUTOALLOCATEBLOCKS", "MAXBLOCKSPERHOST"},
		columns: map[string]columnFunc{
			"NAME":           name,
			"STRICTAFFINITY": ipamConfig(func(c *v3.IPAMConfiguration) string { return strconv.FormatBool(c.Spec.StrictAffinity) }),
			// Unset means Calico's default, which is on.
			"AUTOALLOCATEBLOCKS": ipamConfig(func(c *v3.IPAMConfiguration) string {
				if c.Spec.AutoAllocateBlocks == nil {
					return "true"
				}
				return strconv.FormatBool(*c.Spec.AutoAllocateBlocks)
			}),
			"MAXBLOCKSPERHOST": ipamConfig(func(c *v3.IPAMConfiguration) string {
				return strconv.FormatInt(int64(c.Spec.MaxBlocksPerHost), 10)
			}),
		},
	},
}

// tableFor returns the layout of kind; kinds without one (added to the
// resource model later) get a NAME column, plus NAMESPACE when namespaced.
func tableFor(kind string) table {
	if t, ok := tables[kind]; ok {
		return t
	}
	return table{
		narrow:  []string{"NAME"},
		wide:    []string{"NAME"},
		columns: map[string]columnFunc{"NAME": name, "NAMESPACE": namespace},
	}
}

// DefaultHeadings returns the columns `get -o ps` (wide=false) or
// `get -o wide` prints for kind.
func DefaultHeadings(kind string, wide bool) []string {
	t := tableFor(kind)
	if wide {
		return append([]string(nil), t.wide...)
	}
	return append([]string(nil), t.narrow...)
}

// Headings lists every column name kind accepts in custom-columns, sorted.
func Headings(kind string) []string {
	t := tableFor(kind)
	out := make([]string, 0, len(t.columns))
	for h := range t.columns {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

func name(r v3.Resource, _ *lazyLookup) string      { return r.GetName() }
func namespace(r v3.Resource, _ *lazyLookup) string { return r.GetNamespace() }

func encapOrNever(m v3.EncapMode) string {
	if m == "" {
		return string(v3.EncapNever)
	}
	return string(m)
}

func order(o *float64) string {
	if o == nil {
		return ""
	}
	return fmt.Sprint(*o)
}

// Typed adapters: each column of a kind only ever sees that kind, but the
// assertion keeps a wrong pairing from panicking.
func pool(f func(*v3.IPPool) string) columnFunc                  { return typed(f) }
func peer(f func(*v3.BGPPeer) string) columnFunc                 { return typed(f) }
func bgpConfig(f func(*v3.BGPConfiguration) string) columnFunc   { return typed(f) }
func node(f func(*v3.Node) string) columnFunc                    { return typed(f) }
func wep(f func(*v3.WorkloadEndpoint) string) columnFunc         { return typed(f) }
func hep(f func(*v3.HostEndpoint) string) columnFunc             { return typed(f) }
func np(f func(*v3.NetworkPolicy) string) columnFunc             { return typed(f) }
func gnp(f func(*v3.GlobalNetworkPolicy) string) columnFunc      { return typed(f) }
func ipamConfig(f func(*v3.IPAMConfiguration) string) columnFunc { return typed(f) }

func typed[T v3.Resource](f func(T) string) columnFunc {
	return func(r v3.Resource, _ *lazyLookup) string {
		if t, ok := r.(T); ok {
			return f(t)
		}
		return ""
	}
}

// joinAndTruncate joins items and cuts the result to maxLen characters
// (ending in "...") so one huge set does not make the table unreadable.
func joinAndTruncate(items []string, sep string, maxLen int) string {
	return truncate(strings.Join(items, sep), maxLen)
}

func truncate(s string, maxLen int) string {
	if maxLen > 3 && len(s) > maxLen {
		return s[:maxLen-3] + "..."
	}
	return s
}

// lazyLookup asks the Lookup each question once.
type lazyLookup struct {
	lk  Lookup
	asn *string
}

func (l *lazyLookup) defaultASNumber() string {
	if l.asn == nil {
		v := "unknown"
		if l.lk != nil {
			v = l.lk.DefaultASNumber()
		}
		l.asn = &v
	}
	return *l.asn
}
