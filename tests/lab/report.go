package lab

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Summary prints the lab's layout: nodes, peers and pods.
func (l *Lab) Summary(w io.Writer) {
	fmt.Fprintf(w, "Topology %s: %d nodes", l.Opts.Topology, len(l.Nodes))
	switch l.Opts.Topology {
	case TopologyRR:
		var names []string
		for _, n := range l.RouteReflectors() {
			names = append(names, n.Name)
		}
		fmt.Fprintf(w, ", route reflector(s) %s (cluster ID %s), mesh off", strings.Join(names, ", "), RRClusterID)
	case TopologyToR:
		fmt.Fprintf(w, " in %d racks, eBGP to the FRR ToR (AS %d), mesh off", l.Opts.Racks, ToRAS)
		if l.Opts.ToRPassword != "" {
			fmt.Fprint(w, ", TCP-MD5 on every session")
		}
	default:
		fmt.Fprint(w, ", node-to-node mesh")
	}
	fmt.Fprintf(w, "\nNamespaces: %s-*   work dir: %s\n\n", l.Prefix(), l.Dir())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tRACK\tIP\tAS\tROLE\tCALICO-NODE PID")
	for _, n := range l.Nodes {
		as := "(64512)"
		if n.AS != 0 {
			as = fmt.Sprint(n.AS)
		}
		role := "node"
		if l.isRR(n) {
			role = "route reflector"
		}
		pid := "-"
		if p := n.Proc(); p != nil {
			pid = fmt.Sprint(p.PID())
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", n.Name, n.Rack, n.IP, as, role, pid)
	}
	if l.ToR != nil && l.ToR.FRR != nil {
		var legs []string
		for _, r := range l.ToR.Racks {
			legs = append(legs, ToRAddr(r).String())
		}
		fmt.Fprintf(tw, "tor\t-\t%s\t%d\tFRR top-of-rack router\tzebra %d, bgpd %d\n", strings.Join(legs, ","), ToRAS, l.ToR.FRR.Zebra.PID(), l.ToR.FRR.Bgpd.PID())
	}
	tw.Flush()
	if len(l.Pods) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "POD\tNODE\tIP")
		for _, p := range l.Pods {
			fmt.Fprintf(tw, "%s/%s\t%s\t%s\n", p.Namespace, p.Name, p.Node.Name, p.IP)
		}
		tw.Flush()
	}
}

// Report prints the pod-to-pod matrix, each node's `calicoctl node status`
// and its proto-98 routes, and says whether every pod reached every other
// and every kernel holds exactly the expected routes.
func (l *Lab) Report(ctx context.Context, w io.Writer) (ok bool, err error) {
	ok = true
	m, err := l.Connectivity(ctx)
	if err != nil {
		return false, err
	}
	fmt.Fprintf(w, "\nPod-to-pod connectivity (ping; row = from, column = to):\n%s", m)
	if m.AllOK() {
		fmt.Fprintf(w, "all %d pairs answered\n", len(m.Pods)*(len(m.Pods)-1))
	} else {
		ok = false
		fmt.Fprintf(w, "UNREACHABLE:\n  %s\n", strings.Join(m.Failures(), "\n  "))
	}
	for _, n := range l.Nodes {
		fmt.Fprintf(w, "\n=== %s: calicoctl node status\n", n.Name)
		out, err := n.NodeStatus(ctx)
		if err != nil {
			ok = false
			fmt.Fprintf(w, "%v\n", err)
		} else {
			fmt.Fprint(w, out)
		}
		fmt.Fprintf(w, "--- %s: kernel routes with Tabby's protocol (%d)\n", n.Name, RouteProtocol)
		rs, err := n.NS.Routes(RouteProtocol)
		if err != nil {
			return false, err
		}
		for _, r := range rs {
			fmt.Fprintf(w, "%s\n", r)
		}
		if err := l.CheckRoutes(ctx, n); err != nil {
			ok = false
			fmt.Fprintf(w, "%v\n", err)
		} else {
			fmt.Fprintf(w, "(exactly the expected %d routes)\n", len(rs))
		}
	}
	return ok, nil
}
