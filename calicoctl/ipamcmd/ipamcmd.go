package ipamcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/ipam"
)

type cli struct {
	open           func() (datastore.Interface, error)
	stdout, stderr io.Writer
}

// NewCommand returns the `ipam` command. open connects to the datastore; the
// command closes what it opens.
func NewCommand(open func() (datastore.Interface, error), stdout, stderr io.Writer) *cobra.Command {
	c := &cli{open: open, stdout: stdout, stderr: stderr}
	cmd := &cobra.Command{
		Use:   "ipam",
		Short: "IP address management",
		Long:  "Inspect and repair Calico IP address management: addresses, blocks, affinities and handles.",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q for calicoctl ipam: run 'calicoctl ipam --help' for the list", args[0])
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(c.showCommand(), c.checkCommand(), c.releaseCommand(), c.configureCommand())
	return cmd
}

// withIPAM connects, runs f, and closes the connection.
func (c *cli) withIPAM(cmd *cobra.Command, f func(ctx context.Context, m *ipam.IPAM) error) error {
	ds, err := c.open()
	if err != nil {
		return err
	}
	defer ds.Close()
	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return f(ctx, ipam.New(ds, log))
}

func (c *cli) showCommand() *cobra.Command {
	var ip string
	var showBlocks, showConfig bool
	cmd := &cobra.Command{
		Use:   "show [--ip=<IP> | --show-blocks | --show-configuration]",
		Short: "Show IP usage, or what holds one address",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ip != "" {
				addr, err := netip.ParseAddr(ip)
				if err != nil {
					return fmt.Errorf("invalid IP address %q", ip)
				}
				return c.withIPAM(cmd, func(ctx context.Context, m *ipam.IPAM) error { return c.showIP(ctx, m, addr) })
			}
			if showConfig {
				return c.withIPAM(cmd, c.showConfiguration)
			}
			return c.withIPAM(cmd, func(ctx context.Context, m *ipam.IPAM) error { return c.showUsage(ctx, m, showBlocks) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&ip, "ip", "", "Report whether this specific IP address is in use")
	f.BoolVar(&showBlocks, "show-blocks", false, "Show detailed information for IP blocks as well as pools")
	f.BoolVar(&showConfig, "show-configuration", false, "Show current Calico IPAM configuration")
	cmd.MarkFlagsMutuallyExclusive("ip", "show-blocks", "show-configuration")
	return cmd
}

func (c *cli) showIP(ctx context.Context, m *ipam.IPAM, ip netip.Addr) error {
	a, err := m.AllocationInfo(ctx, ip)
	if errors.Is(err, ipam.ErrNotAllocated) {
		fmt.Fprintf(c.stdout, "%s is not assigned\n", ip)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "IP %s is in use\n", ip)
	if a.HandleID != "" {
		fmt.Fprintf(c.stdout, "Handle ID: %s\n", a.HandleID)
	} else {
		fmt.Fprintln(c.stdout, "Handle ID: <none>")
	}
	fmt.Fprintf(c.stdout, "Block: %s (affinity: %s)\n", a.Block, orNone(a.BlockNode))
	if len(a.Attrs) == 0 {
		fmt.Fprintln(c.stdout, "No attributes defined")
		return nil
	}
	fmt.Fprintln(c.stdout, "Attributes:")
	for _, k := range slices.Sorted(maps.Keys(a.Attrs)) {
		fmt.Fprintf(c.stdout, "  %s: %s\n", k, a.Attrs[k])
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// usageRow is Calico's row: totals with "%.5g", in-use and free with their
// rounded percentage.
func usageRow(kind, cidr string, total, inUse float64) []string {
	return []string{
		kind, cidr,
		fmt.Sprintf("%.5g", total),
		fmt.Sprintf("%.5g (%.f%%)", inUse, 100*inUse/total),
		fmt.Sprintf("%.5g (%.f%%)", total-inUse, 100*(total-inUse)/total),
	}
}

func (c *cli) showUsage(ctx context.Context, m *ipam.IPAM, showBlocks bool) error {
	usage, err := m.Usage(ctx)
	if err != nil {
		return err
	}
	var rows [][]string
	for _, p := range usage {
		if p.CIDR.IsValid() {
			rows = append(rows, usageRow("IP Pool", p.CIDR.String(), p.Total, float64(p.InUse)))
		}
		if showBlocks {
			for _, b := range p.Blocks {
				rows = append(rows, usageRow("Block", b.CIDR.String(), float64(b.Total), float64(b.InUse)))
			}
		}
	}
	return writeTable(c.stdout, []string{"GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS FREE"}, rows)
}

func (c *cli) showConfiguration(ctx context.Context, m *ipam.IPAM) error {
	cfg, err := m.GetConfig(ctx)
	if err != nil {
		return err
	}
	return writeTable(c.stdout, []string{"PROPERTY", "VALUE"}, [][]string{
		{"StrictAffinity", strconv.FormatBool(cfg.StrictAffinity)},
		{"AutoAllocateBlocks", strconv.FormatBool(cfg.AutoAllocateBlocks)},
		{"MaxBlocksPerHost", strconv.Itoa(cfg.MaxBlocksPerHost)},
	})
}

func (c *cli) releaseCommand() *cobra.Command {
	var ip, report string
	var force bool
	cmd := &cobra.Command{
		Use:   "release --ip=<IP> | --from-report=<REPORT>",
		Short: "Release an address, or the leaked addresses of an `ipam check` report",
		Long: `Release an IP address that was assigned to an endpoint that no longer exists,
or every address that an 'ipam check -o' report found leaked.

Releasing from a report looks for an owner of each address again right before
releasing it, and only releases the exact allocation the report saw (by handle
and sequence number), so addresses assigned since the report are kept.
Addresses allocated less than a minute before the report was generated are
kept too (a pod's ADD may not have written its endpoint yet) unless --force
is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case ip != "" && report != "":
				return errors.New("use either --ip or --from-report, not both")
			case ip != "":
				addr, err := netip.ParseAddr(ip)
				if err != nil {
					return fmt.Errorf("invalid IP address %q", ip)
				}
				return c.withIPAM(cmd, func(ctx context.Context, m *ipam.IPAM) error {
					unallocated, err := m.ReleaseIPs(ctx, addr)
					if err != nil {
						return err
					}
					if len(unallocated) > 0 {
						return fmt.Errorf("IP address %s is not assigned", addr)
					}
					fmt.Fprintf(c.stdout, "Successfully released IP address %s\n", addr)
					return nil
				})
			case report != "":
				r, err := readReport(report)
				if err != nil {
					return err
				}
				return c.withIPAM(cmd, func(ctx context.Context, m *ipam.IPAM) error {
					return c.releaseReport(ctx, m, r, ipam.ReportReleaseOptions{Force: force})
				})
			}
			return errors.New("specify --ip or --from-report")
		},
	}
	f := cmd.Flags()
	f.StringVar(&ip, "ip", "", "IP address to release")
	f.StringVar(&report, "from-report", "", "Release all leaked addresses from the report")
	f.BoolVar(&force, "force", false, "Also release leaked addresses allocated less than a minute before the report (their pod's ADD may still be running)")
	return cmd
}

func readReport(path string) (*ipam.Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	var r ipam.Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("read report %s: %w", path, err)
	}
	return &r, nil
}

func (c *cli) releaseReport(ctx context.Context, m *ipam.IPAM, r *ipam.Report, o ipam.ReportReleaseOptions) error {
	leaked := r.Leaked()
	if len(leaked) == 0 {
		fmt.Fprintln(c.stdout, "Report didn't contain any leaked IPs to clean up.")
	} else {
		fmt.Fprintf(c.stdout, "Releasing %d old IPs...\n", len(leaked))
	}
	res, err := m.ReleaseFromReport(ctx, r, o)
	if len(leaked) > 0 {
		fmt.Fprintf(c.stdout, "Released %d IPs successfully\n", len(res.Released))
	}
	if n := len(res.AlreadyFree); n > 0 {
		fmt.Fprintf(c.stdout, "%d addresses marked as leaked in the report had already been cleaned up.\n", n)
	}
	if n := len(res.Changed) + len(res.StillInUse); n > 0 {
		fmt.Fprintf(c.stdout, "%d addresses were re-assigned or found in use since the report and were kept.\n", n)
	}
	if n := len(res.TooNew); n > 0 {
		fmt.Fprintf(c.stdout, "%d addresses were allocated less than %s before the report and were kept (their pod may still be starting); use --force to release them.\n", n, ipam.DefaultReleaseGrace)
	}
	if len(r.LeakedHandles) > 0 {
		fmt.Fprintf(c.stdout, "Released %d handles; %d skipped.\n", len(res.DeletedHandles), len(res.KeptHandles))
	}
	return err
}

func (c *cli) configureCommand() *cobra.Command {
	var strict bool
	var maxBlocks int
	cmd := &cobra.Command{
		Use:   "configure [--strictaffinity=<true/false>] [--max-blocks-per-host=<number>]",
		Short: "Modify IPAM configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			setStrict, setMax := cmd.Flags().Changed("strictaffinity"), cmd.Flags().Changed("max-blocks-per-host")
			if !setStrict && !setMax {
				return errors.New("at least one configuration option must be specified")
			}
			return c.withIPAM(cmd, func(ctx context.Context, m *ipam.IPAM) error {
				cfg, err := m.GetConfig(ctx)
				if err != nil {
					return err
				}
				if setStrict {
					cfg.StrictAffinity = strict
				}
				if setMax {
					cfg.MaxBlocksPerHost = maxBlocks
				}
				if err := m.SetConfig(ctx, cfg); err != nil {
					return err
				}
				if setStrict {
					fmt.Fprintln(c.stdout, "Successfully set StrictAffinity to:", strict)
				}
				if setMax {
					fmt.Fprintln(c.stdout, "Successfully set MaxBlocksPerHost to:", maxBlocks)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&strict, "strictaffinity", false, "Set StrictAffinity to true/false. When StrictAffinity is true, borrowing IP addresses is not allowed")
	f.IntVar(&maxBlocks, "max-blocks-per-host", 0, "Set the maximum number of blocks that can be affine to a host (0: unlimited)")
	return cmd
}
