package ipamcmd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tabbynet/tabby/ipam"
)

func (c *cli) checkCommand() *cobra.Command {
	var out string
	var showAll, showProblems bool
	cmd := &cobra.Command{
		Use:   "check [-o <FILE>] [--show-all-ips] [--show-problem-ips]",
		Short: "Check IPAM records against workloads and nodes",
		Long: `Check the integrity of the IPAM records against the workload endpoints and
nodes: leaked addresses (allocated, but no workload or node uses them), addresses
in use without an allocation, blocks and affinities of nodes that no longer
exist, and handles that do not match the blocks. It only reads.

With -o, a JSON report is written that 'ipam release --from-report' consumes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withIPAM(cmd, func(ctx context.Context, m *ipam.IPAM) error {
				r, err := m.Check(ctx)
				if err != nil {
					return err
				}
				c.printCheck(r, showAll, showAll || showProblems)
				if out != "" {
					data, err := json.MarshalIndent(r, "", "  ")
					if err != nil {
						return fmt.Errorf("encode report: %w", err)
					}
					if err := os.WriteFile(out, append(data, '\n'), 0o644); err != nil {
						return fmt.Errorf("write report: %w", err)
					}
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "Path to output report file")
	f.BoolVar(&showAll, "show-all-ips", false, "Print all IPs that are checked")
	f.BoolVar(&showProblems, "show-problem-ips", false, "Print all IPs that are leaked or not allocated properly")
	return cmd
}

// printCheck prints the report in the words of Calico's `ipam check`, with
// Tabby's extra classes (orphans, handle mismatches) added.
func (c *cli) printCheck(r *ipam.Report, showAll, showProblems bool) {
	w := c.stdout
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("Checking IPAM for inconsistencies...\n\n")

	p("Loading all IPAM blocks...\n")
	p("Found %d IPAM blocks.\n", len(r.Blocks))
	for _, b := range r.Blocks {
		aff := b.Affinity
		if aff == "" {
			aff = "<none>"
		}
		p(" IPAM block %s affinity=%s:\n", b.CIDR, aff)
		if showAll {
			for _, a := range r.Allocations {
				if a.Block == b.CIDR {
					p("  %s allocated; attrs %s\n", a.IP, attrString(a))
				}
			}
		}
	}
	p("IPAM blocks record %d allocations.\n\n", len(r.Allocations))

	p("Loading all IPAM pools...\n")
	for _, pool := range r.Pools {
		p("  %s\n", pool)
	}
	p("Found %d active IP pools.\n\n", len(r.Pools))

	inUse := map[string]bool{}
	for _, a := range r.Allocations {
		if a.InUse {
			inUse[a.IP] = true
		}
	}
	for _, m := range r.Missing {
		inUse[m.IP] = true
	}
	p("Workloads and nodes are using %d IPs.\n\n", len(inUse))

	leaked := r.Leaked()
	p("Scanning for IPs that are allocated but not actually in use...\n")
	if showProblems {
		for _, a := range leaked {
			p("  %s leaked; attrs %s\n", a.IP, attrString(a))
		}
	}
	p("Found %d IPs that are allocated in IPAM but not actually in use.\n", len(leaked))

	p("Scanning for IPs that are in use by a workload or node but not allocated in IPAM...\n")
	notInPool, missing := 0, 0
	for _, m := range r.Missing {
		if m.InPool {
			missing++
			if showProblems {
				p("  %s in use by %s and in active IPAM pool but has no IPAM allocation.\n", m.IP, m.Owner)
			}
		} else {
			notInPool++
			if showProblems {
				p("  %s in use by %s is not in any active IP pool.\n", m.IP, m.Owner)
			}
		}
	}
	p("Found %d in-use IPs that are not in active IP pools.\n", notInPool)
	p("Found %d in-use IPs that are in active IP pools but have no corresponding IPAM allocation.\n\n", missing)

	p("Scanning for IPAM handles with no matching IPs...\n")
	for _, h := range r.LeakedHandles {
		if showProblems {
			p("  %s doesn't have any active IPs.\n", h.HandleID)
		}
	}
	p("Found %d handles with no matching IPs.\n", len(r.LeakedHandles))
	p("Scanning for IPs with missing handle...\n")
	for _, h := range r.MissingHandles {
		if showProblems {
			p("  %s is in use in a block but doesn't exist.\n", h.HandleID)
		}
	}
	p("Found %d handles mentioned in blocks with no matching handle resource.\n", len(r.MissingHandles))
	for _, h := range r.HandleMismatches {
		if showProblems {
			p("  %s counts %d addresses; the blocks hold %d.\n", h.HandleID, h.Counted, h.Actual)
		}
	}
	p("Found %d handles whose address counts do not match the blocks.\n\n", len(r.HandleMismatches))

	p("Scanning for blocks and affinities of nodes that do not exist...\n")
	for _, b := range r.OrphanedBlocks {
		if showProblems {
			p("  block %s: %s\n", b.CIDR, b.Reason)
		}
	}
	p("Found %d orphaned blocks.\n", len(r.OrphanedBlocks))
	for _, a := range r.OrphanedAffinities {
		if showProblems {
			p("  affinity %s (%s): %s\n", a.Name, a.State, a.Reason)
		}
	}
	p("Found %d affinities that do not match a block of an existing node.\n", len(r.OrphanedAffinities))
	p("Check complete; found %d problems.\n", r.Problems())
}

func attrString(a ipam.ReportAllocation) string {
	var kv []string
	for _, f := range [][2]string{{"namespace", a.Namespace}, {"node", a.Node}, {"pod", a.Pod}, {"timestamp", a.CreationTimestamp}, {"type", a.Type}} {
		if f[1] != "" {
			kv = append(kv, f[0]+"="+f[1])
		}
	}
	h := a.Handle
	if h == "" {
		h = "<none>"
	}
	return fmt.Sprintf("Main:%s Extra:%s", h, strings.Join(kv, ","))
}
