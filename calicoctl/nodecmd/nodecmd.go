package nodecmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tabbynet/tabby/api/agentpb"
)

// DefaultAgentSocket is where calico-node serves its agent API.
const DefaultAgentSocket = "/var/run/calico/agent.sock"

// statusTimeout bounds the whole Status call.
const statusTimeout = 10 * time.Second

// ErrNotRunning is returned (after Calico's message is printed) when the
// agent does not answer.
var ErrNotRunning = errors.New("calico-node is not running")

type cli struct {
	getenv         func(string) string
	stdout, stderr io.Writer
	now            func() time.Time
	loc            *time.Location
}

// NewCommand returns `calicoctl node` with its `status` subcommand.
// getenv reads CALICO_AGENT_SOCKET.
func NewCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	return newCommand(&cli{getenv: getenv, stdout: stdout, stderr: stderr, now: time.Now, loc: time.Local})
}

func newCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Calico node management",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q for calicoctl node: run 'calicoctl node --help' for the list", args[0])
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(c.statusCommand())
	return cmd
}

func (c *cli) socket() string {
	if s := c.getenv("CALICO_AGENT_SOCKET"); s != "" {
		return s
	}
	return DefaultAgentSocket
}

func (c *cli) statusCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status [-o json]",
		Short: "Show the status of the calico-node on this host and its BGP peers",
		Long: `Show whether calico-node runs on this host and the state of its BGP sessions,
as Calico's "calicoctl node status" does. It asks the agent at CALICO_AGENT_SOCKET
(default ` + DefaultAgentSocket + `), which needs root.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" {
				return fmt.Errorf("unknown output format %q: use -o json or nothing", output)
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			resp, err := c.status(ctx)
			if output == "json" {
				return c.printJSON(resp, err)
			}
			return c.printTable(resp, err)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json (default: Calico's table)")
	return cmd
}

// status asks the agent for its Status.
func (c *cli) status(ctx context.Context) (*agentpb.StatusResponse, error) {
	socket := c.socket()
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	conn, err := grpc.NewClient("passthrough:///"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to the calico-node agent at %s: %w", socket, err)
	}
	defer conn.Close()
	resp, err := agentpb.NewAgentClient(conn).Status(ctx, &agentpb.StatusRequest{}, grpc.WaitForReady(false))
	if err != nil {
		return nil, fmt.Errorf("ask the calico-node agent at %s for its status: %w", socket, err)
	}
	return resp, nil
}

func isV6(p *agentpb.BGPPeerStatus) bool {
	a, err := netip.ParseAddr(p.GetAddress())
	return err == nil && a.Is6() && !a.Is4In6()
}

func byFamily(peers []*agentpb.BGPPeerStatus) (v4, v6 []*agentpb.BGPPeerStatus) {
	for _, p := range peers {
		if isV6(p) {
			v6 = append(v6, p)
		} else {
			v4 = append(v4, p)
		}
	}
	sortPeers := func(l []*agentpb.BGPPeerStatus) {
		sort.Slice(l, func(i, j int) bool {
			a, errA := netip.ParseAddr(l[i].GetAddress())
			b, errB := netip.ParseAddr(l[j].GetAddress())
			if errA != nil || errB != nil {
				return l[i].GetAddress() < l[j].GetAddress()
			}
			return a.Less(b)
		})
	}
	sortPeers(v4)
	sortPeers(v6)
	return v4, v6
}

// birdState maps a session state to BIRD's protocol state column.
func birdState(p *agentpb.BGPPeerStatus) string {
	if p.GetState() == "Established" {
		return "up"
	}
	return "start"
}

// since renders a state change time as BIRD does: the time of day when it
// was within the last day, else the date.
func (c *cli) since(unix int64) string {
	if unix == 0 {
		return ""
	}
	t := time.Unix(unix, 0).In(c.loc)
	if c.now().Sub(t) < 24*time.Hour {
		return t.Format("15:04:05")
	}
	return t.Format("2006-01-02")
}

func info(p *agentpb.BGPPeerStatus) string {
	if p.GetInfo() != "" {
		return p.GetInfo()
	}
	return p.GetState()
}

func (c *cli) printTable(resp *agentpb.StatusResponse, err error) error {
	if err != nil {
		fmt.Fprintln(c.stdout, "Calico process is not running.")
		return fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	var b strings.Builder
	b.WriteString("Calico process is running.\n\n")
	if resp.GetBgpState() != "running" {
		b.WriteString("None of the BGP backend processes (BIRD or GoBGP) are running.\n")
		_, werr := io.WriteString(c.stdout, b.String())
		return werr
	}
	v4, v6 := byFamily(resp.GetPeers())
	for _, fam := range []struct {
		name  string
		peers []*agentpb.BGPPeerStatus
	}{{"IPv4", v4}, {"IPv6", v6}} {
		fmt.Fprintf(&b, "%s BGP status\n", fam.name)
		if len(fam.peers) == 0 {
			fmt.Fprintf(&b, "No %s peers found.\n", fam.name)
		} else {
			rows := make([][]string, 0, len(fam.peers))
			for _, p := range fam.peers {
				rows = append(rows, []string{p.GetAddress(), p.GetType(), birdState(p), c.since(p.GetSinceUnix()), info(p)})
			}
			writeTable(&b, []string{"PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"}, rows)
		}
		b.WriteString("\n")
	}
	_, werr := io.WriteString(c.stdout, b.String())
	return werr
}

// writeTable draws rows as Calico's calicoctl does: a boxed ASCII table
// with centred headers and left-aligned cells.
func writeTable(b *strings.Builder, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = len(h)
	}
	for _, r := range rows {
		for i, cell := range r {
			widths[i] = max(widths[i], len(cell))
		}
	}
	sep := func() {
		b.WriteString("+")
		for _, w := range widths {
			b.WriteString(strings.Repeat("-", w+2) + "+")
		}
		b.WriteString("\n")
	}
	sep()
	b.WriteString("|")
	for i, h := range header {
		gap := widths[i] - len(h)
		fmt.Fprintf(b, " %s%s%s |", strings.Repeat(" ", gap/2), h, strings.Repeat(" ", gap-gap/2))
	}
	b.WriteString("\n")
	sep()
	for _, r := range rows {
		b.WriteString("|")
		for i, cell := range r {
			fmt.Fprintf(b, " %-*s |", widths[i], cell)
		}
		b.WriteString("\n")
	}
	sep()
}

// JSON shapes: field names follow Calico's CalicoNodeStatus (status.bgp),
// with Tabby's extra per-peer detail.
type jsonStatus struct {
	Running   bool    `json:"running"`
	Error     string  `json:"error,omitempty"`
	NodeName  string  `json:"nodeName,omitempty"`
	Version   string  `json:"version,omitempty"`
	Live      bool    `json:"live"`
	Ready     bool    `json:"ready"`
	StartedAt string  `json:"startedAt,omitempty"`
	BGP       jsonBGP `json:"bgp"`
}

type jsonBGP struct {
	State                  string     `json:"state"`
	NumberEstablishedV4    int        `json:"numberEstablishedV4"`
	NumberNotEstablishedV4 int        `json:"numberNotEstablishedV4"`
	NumberEstablishedV6    int        `json:"numberEstablishedV6"`
	NumberNotEstablishedV6 int        `json:"numberNotEstablishedV6"`
	PeersV4                []jsonPeer `json:"peersV4"`
	PeersV6                []jsonPeer `json:"peersV6"`
}

type jsonPeer struct {
	PeerIP           string `json:"peerIP"`
	Type             string `json:"type"`
	State            string `json:"state"`
	Since            string `json:"since,omitempty"`
	Info             string `json:"info"`
	LastError        string `json:"lastError,omitempty"`
	ASNumber         uint32 `json:"asNumber,omitempty"`
	RoutesReceived   uint64 `json:"routesReceived"`
	RoutesAccepted   uint64 `json:"routesAccepted"`
	RoutesAdvertised uint64 `json:"routesAdvertised"`
}

func (c *cli) printJSON(resp *agentpb.StatusResponse, err error) error {
	out := jsonStatus{BGP: jsonBGP{PeersV4: []jsonPeer{}, PeersV6: []jsonPeer{}}}
	if err != nil {
		out.Error = err.Error()
	} else {
		out.Running = true
		out.NodeName, out.Version, out.Live, out.Ready = resp.GetNodeName(), resp.GetVersion(), resp.GetLive(), resp.GetReady()
		if resp.GetStartedUnix() != 0 {
			out.StartedAt = time.Unix(resp.GetStartedUnix(), 0).UTC().Format(time.RFC3339)
		}
		out.BGP.State = resp.GetBgpState()
		v4, v6 := byFamily(resp.GetPeers())
		conv := func(l []*agentpb.BGPPeerStatus, est, notEst *int) []jsonPeer {
			peers := []jsonPeer{}
			for _, p := range l {
				jp := jsonPeer{
					PeerIP: p.GetAddress(), Type: p.GetType(), State: p.GetState(), Info: info(p),
					LastError: p.GetLastError(), ASNumber: p.GetAsn(),
					RoutesReceived: p.GetRoutesReceived(), RoutesAccepted: p.GetRoutesAccepted(), RoutesAdvertised: p.GetRoutesAdvertised(),
				}
				if p.GetSinceUnix() != 0 {
					jp.Since = time.Unix(p.GetSinceUnix(), 0).UTC().Format(time.RFC3339)
				}
				if p.GetState() == "Established" {
					*est++
				} else {
					*notEst++
				}
				peers = append(peers, jp)
			}
			return peers
		}
		out.BGP.PeersV4 = conv(v4, &out.BGP.NumberEstablishedV4, &out.BGP.NumberNotEstablishedV4)
		out.BGP.PeersV6 = conv(v6, &out.BGP.NumberEstablishedV6, &out.BGP.NumberNotEstablishedV6)
	}
	b, merr := json.MarshalIndent(out, "", "  ")
	if merr != nil {
		return merr
	}
	if _, werr := c.stdout.Write(append(b, '\n')); werr != nil {
		return werr
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	return nil
}
