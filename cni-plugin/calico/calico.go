package calico

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/tabbynet/tabby/api/agentpb"
	"github.com/tabbynet/tabby/cni-plugin/agent"
	"github.com/tabbynet/tabby/cni-plugin/calicoipam"
	"github.com/tabbynet/tabby/cni-plugin/cnierr"
	"github.com/tabbynet/tabby/cni-plugin/dataplane"
	"github.com/tabbynet/tabby/cni-plugin/invocation"
	"github.com/tabbynet/tabby/cni-plugin/netconf"
)

// PluginName is the netconf "type" of this plugin.
const PluginName = "calico"

// DefaultMTU is used when neither the netconf nor the agent gives one.
const DefaultMTU = 1500

// Plugin is the calico CNI plugin. The zero value is not usable: use New.
type Plugin struct {
	stderr   io.Writer
	readFile func(string) ([]byte, error)
	exec     invoke.Exec // nil: find and run delegated plugins on CNI_PATH
}

// New returns the plugin logging to stderr.
func New(stderr io.Writer) *Plugin {
	return &Plugin{stderr: stderr, readFile: os.ReadFile}
}

// Funcs is what main hands to skel.PluginMainFuncs.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Del: p.Del, Check: p.Check, Status: p.Status, GC: p.GC}
}

// Add creates the pod's network: IPAM (calico-ipam in-process, any other
// plugin delegated), the veth pair, then the agent's endpoint and host
// route, and prints the result. Whatever fails
// after IPAM undoes what came before it (the deferred steps run on every
// error path because err is the named return).
func (p *Plugin) Add(args *skel.CmdArgs) (err error) {
	inv, err := invocation.Begin(PluginName, "ADD", args, p.stderr, true)
	if err != nil {
		return err
	}
	defer inv.End()
	conf, log := inv.Conf, inv.Log
	if conf.IPAM.Type == "" {
		return cnierr.Config(`netconf: "ipam.type" is missing: set "ipam": {"type": "calico-ipam"} (or another IPAM plugin such as "host-local")`)
	}
	if args.Netns == "" {
		return cnierr.NetNS("ADD %s: CNI_NETNS is empty", inv.Workload)
	}

	// Ask the agent first: if it is down, fail before anything is allocated
	// or created, with "try again later".
	ctx, cancel := agent.Ctx(agent.StatusTimeout)
	st, err := inv.Agent.Status(ctx, &agentpb.StatusRequest{})
	cancel()
	if err != nil {
		return inv.Agent.Error(inv.String(), err, types.ErrTryAgainLater)
	}
	if err := p.checkNodename(inv, st.GetNodeName()); err != nil {
		return err
	}
	mtu := conf.MTU
	if mtu == 0 {
		mtu = int(st.GetMtu())
	}
	if mtu == 0 {
		mtu = DefaultMTU
	}

	hostNS, err := ns.GetCurrentNS()
	if err != nil {
		return cnierr.Internal("%s: open the host netns: %v", inv, err)
	}
	defer hostNS.Close()
	spec := dataplane.Spec{
		HostIfName: inv.Workload.HostVethName(),
		PodIfName:  args.IfName,
		PodNetNS:   args.Netns,
		MTU:        mtu,
	}

	// With calico-ipam, which families the pod gets is known before its
	// addresses are (the agent assigns exactly what the netconf asks for,
	// and Assign checks it), so the veth pair is built while the agent
	// assigns them: ADD waits for the slower of the two, not for both. With
	// another IPAM plugin, the link waits for its result.
	// Step timings go into the final log line: where an ADD spends its time
	// is the first question when pods start slowly.
	t0 := time.Now()
	early := conf.IPAM.Type == netconf.IPAMTypeCalico && (conf.IPAM.AssignIPv4 || conf.IPAM.AssignIPv6)
	var ifs dataplane.Interfaces
	var linkErr error
	var linkTook time.Duration
	linkDone := make(chan struct{})
	if early {
		go func() {
			defer close(linkDone)
			start := time.Now()
			ifs, linkErr = dataplane.CreateLink(log, hostNS, spec, conf.IPAM.AssignIPv6)
			linkTook = time.Since(start)
		}()
	}
	ipamRes, undoIPAM, ipamErr := p.ipamAdd(inv)
	ipamTook := time.Since(t0)
	if early {
		<-linkDone
	}
	if ipamErr == nil {
		defer func() {
			if err != nil {
				undoIPAM()
			}
		}()
	}
	linkMade := early && linkErr == nil
	defer func() {
		if err == nil || !linkMade {
			return
		}
		if _, delErr := dataplane.Teardown(args.Netns, args.IfName); delErr != nil {
			log.Error("removing the veth of the failed ADD failed", "err", delErr)
		}
	}()
	if ipamErr != nil {
		return ipamError(inv, ipamErr)
	}
	if linkErr != nil {
		return linkError(inv, linkErr)
	}
	res, err := current.NewResultFromResult(ipamRes)
	if err != nil {
		return cnierr.Internal("%s: convert the result of IPAM plugin %q: %v", inv, conf.IPAM.Type, err)
	}
	for _, ipc := range res.IPs {
		spec.Addrs = append(spec.Addrs, dataplane.HostPrefix(ipc.Address.IP))
	}
	if len(spec.Addrs) == 0 {
		return cnierr.Internal("%s: IPAM plugin %q returned no addresses", inv, conf.IPAM.Type)
	}
	if !early {
		start := time.Now()
		if ifs, err = dataplane.Setup(log, hostNS, spec); err != nil {
			return linkError(inv, err)
		}
		linkMade = true
		linkTook = time.Since(start)
	}

	// The endpoint and host route (the agent) and the pod's own addresses
	// and routes (inside its netns) do not depend on each other either.
	ips := make([]string, len(spec.Addrs))
	for i, a := range spec.Addrs {
		ips[i] = a.String()
	}
	var podErr error
	var podTook time.Duration
	podDone := make(chan struct{})
	if early {
		go func() {
			defer close(podDone)
			start := time.Now()
			podErr = dataplane.ConfigurePod(spec)
			podTook = time.Since(start)
		}()
	} else {
		close(podDone)
	}
	tAgent := time.Now()
	ctx, cancel = agent.Ctx(agent.CallTimeout)
	defer cancel()
	added, err := inv.Agent.AddWorkload(ctx, &agentpb.AddWorkloadRequest{
		Workload:      inv.WorkloadID(),
		InterfaceName: spec.HostIfName,
		Mac:           ifs.PodMAC.String(),
		Ips:           ips,
		Netns:         args.Netns,
	})
	agentTook := time.Since(tAgent)
	<-podDone
	if err != nil {
		// The agent may have written the endpoint before failing (a lost
		// answer): remove it too, so nothing is left behind.
		p.delWorkload(inv)
		return inv.Agent.Error(fmt.Sprintf("%s: record the workload endpoint and program the host route", inv), err, types.ErrTryAgainLater)
	}
	if podErr != nil {
		p.delWorkload(inv)
		return linkError(inv, podErr)
	}
	log.Info("pod network added", "veth", spec.HostIfName, "ips", strings.Join(ips, ","), "mtu", ifs.MTU, "endpoint", added.GetEndpointName(),
		"ipam_ms", ms(ipamTook), "veth_ms", ms(linkTook+podTook), "agent_ms", ms(agentTook), "overlapped", early, "total_ms", ms(time.Since(t0)))

	result := buildResult(args, spec, ifs, res.DNS)
	if err := types.PrintResult(result, conf.CNIVersion); err != nil {
		p.delWorkload(inv)
		return cnierr.Internal("%s: print the result: %v", inv, err)
	}
	return nil
}

// ipamAdd runs the IPAM step of ADD and returns its result and how to undo
// it. With "ipam.type" calico-ipam, the calico-ipam ADD runs in this
// process over the agent connection it already has, instead of exec'ing the
// calico-ipam binary (which would parse the same netconf, dial the same
// agent and make the same AssignIPs call): one process start and one
// connection less per pod, and the same addresses, handle, result and
// errors. Calico's own plugin execs calico-ipam; Tabby's keeps the binary
// for chains that name it and for every other plugin that delegates to it.
// Any other IPAM plugin (host-local, ...) is exec'd as CNI delegation says.
func (p *Plugin) ipamAdd(inv *invocation.Invocation) (types.Result, func(), error) {
	if inv.Conf.IPAM.Type == netconf.IPAMTypeCalico {
		res, err := calicoipam.Assign(inv)
		if err != nil {
			return nil, nil, err
		}
		return res, func() { calicoipam.ReleaseAfterFailure(inv) }, nil
	}
	ctx, cancel := agent.Ctx(agent.CallTimeout)
	defer cancel()
	res, err := invoke.DelegateAdd(ctx, inv.Conf.IPAM.Type, inv.Args.StdinData, p.exec)
	if err != nil {
		return nil, nil, err
	}
	undo := func() {
		// New context: the ADD's own may be what ran out.
		ctx, cancel := agent.Ctx(agent.CallTimeout)
		defer cancel()
		if delErr := invoke.DelegateDel(ctx, inv.Conf.IPAM.Type, inv.Args.StdinData, p.exec); delErr != nil {
			inv.Log.Error("releasing the addresses of the failed ADD failed; the next DEL or GC releases them", "ipam", inv.Conf.IPAM.Type, "err", delErr)
		}
	}
	return res, undo, nil
}

// ipamDel runs the IPAM step of DEL, in-process for calico-ipam (see
// ipamAdd).
func (p *Plugin) ipamDel(ctx context.Context, inv *invocation.Invocation) error {
	if inv.Conf.IPAM.Type == netconf.IPAMTypeCalico {
		return calicoipam.Release(inv)
	}
	return invoke.DelegateDel(ctx, inv.Conf.IPAM.Type, inv.Args.StdinData, p.exec)
}

// ipamCheck runs the IPAM step of CHECK, in-process for calico-ipam (see
// ipamAdd).
func (p *Plugin) ipamCheck(ctx context.Context, inv *invocation.Invocation) error {
	if inv.Conf.IPAM.Type == netconf.IPAMTypeCalico {
		return calicoipam.CheckAgent(inv)
	}
	return invoke.DelegateCheck(ctx, inv.Conf.IPAM.Type, inv.Args.StdinData, p.exec)
}

func (p *Plugin) delWorkload(inv *invocation.Invocation) {
	ctx, cancel := agent.Ctx(agent.CallTimeout)
	defer cancel()
	if _, err := inv.Agent.DelWorkload(ctx, &agentpb.DelWorkloadRequest{Workload: inv.WorkloadID()}); err != nil {
		inv.Log.Error("removing the workload endpoint of the failed ADD failed; the next DEL or GC removes it", "err", err)
	}
}

// checkNodename refuses to add a pod through an agent that serves another
// node than the netconf names: the endpoint would be written for the wrong
// node and its routes advertised from the wrong place.
func (p *Plugin) checkNodename(inv *invocation.Invocation, agentNode string) error {
	want, source, err := inv.Conf.ExpectedNodename(p.readFile)
	if err != nil {
		return cnierr.Config("%s: %v", inv, err)
	}
	if want == "" || agentNode == "" || want == agentNode {
		return nil
	}
	return cnierr.Config("%s: %s names node %q, but the calico-node agent at %s serves node %q: fix the netconf's \"nodename\" (or the nodename file), or point \"agent_socket\" at this node's agent",
		inv, source, want, inv.Conf.AgentSocket, agentNode)
}

// buildResult is the CNI result: the host veth (index 0) and the pod
// interface (index 1, with its sandbox), every address on the pod
// interface, and the routes the pod got.
func buildResult(args *skel.CmdArgs, spec dataplane.Spec, ifs dataplane.Interfaces, dns types.DNS) *current.Result {
	res := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: spec.HostIfName, Mac: dataplane.HostMAC.String(), Mtu: ifs.MTU},
			{Name: args.IfName, Mac: ifs.PodMAC.String(), Mtu: ifs.MTU, Sandbox: args.Netns},
		},
		DNS: dns,
	}
	for _, a := range spec.Addrs {
		gw := dataplane.GatewayIPv4
		if a.IP.To4() == nil {
			gw = dataplane.GatewayIPv6
		}
		res.IPs = append(res.IPs, &current.IPConfig{Address: a, Gateway: gw, Interface: current.Int(1)})
	}
	if spec.HasV4() {
		scopeLink := int(unix.RT_SCOPE_LINK)
		res.Routes = append(res.Routes,
			&types.Route{Dst: net.IPNet{IP: dataplane.GatewayIPv4, Mask: net.CIDRMask(32, 32)}, Scope: &scopeLink},
			&types.Route{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: dataplane.GatewayIPv4},
		)
	}
	if spec.HasV6() {
		res.Routes = append(res.Routes,
			&types.Route{Dst: net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}, GW: dataplane.GatewayIPv6})
	}
	return res
}

// linkError wraps a failure to build the pod's interface.
func linkError(inv *invocation.Invocation, err error) error {
	code := types.ErrInternal
	var nsErr ns.NSPathNotExistErr
	if errors.As(err, &nsErr) {
		code = types.ErrInvalidNetNS
	}
	return cnierr.Wrap(code, fmt.Sprintf("%s: create the pod interface", inv), err)
}

// ipamError wraps a delegated IPAM plugin's failure, naming the plugin only
// when its own message does not already start with its name.
func ipamError(inv *invocation.Invocation, err error) error {
	t := inv.Conf.IPAM.Type
	doing := fmt.Sprintf("%s: IPAM plugin %q", inv, t)
	if strings.HasPrefix(err.Error(), t+":") || strings.HasPrefix(err.Error(), t+" ") {
		doing = inv.String()
	}
	return cnierr.Wrap(types.ErrInternal, doing, err)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
