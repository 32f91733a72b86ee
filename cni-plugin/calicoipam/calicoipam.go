package calicoipam

import (
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/tabbynet/tabby/api/agentpb"
	"github.com/tabbynet/tabby/cni-plugin/agent"
	"github.com/tabbynet/tabby/cni-plugin/cnierr"
	"github.com/tabbynet/tabby/cni-plugin/invocation"
)

// PluginName is the "ipam.type" of this plugin.
const PluginName = "calico-ipam"

// Plugin is the calico-ipam plugin.
type Plugin struct {
	stderr io.Writer
}

// New returns the plugin logging to stderr.
func New(stderr io.Writer) *Plugin { return &Plugin{stderr: stderr} }

// Funcs is what main hands to skel.PluginMainFuncs.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Del: p.Del, Check: p.Check, Status: p.Status, GC: p.GC}
}

// Add assigns the pod's addresses and prints them as an IPAM result.
func (p *Plugin) Add(args *skel.CmdArgs) (err error) {
	inv, err := invocation.Begin(PluginName, "ADD", args, p.stderr, true)
	if err != nil {
		return err
	}
	defer inv.End()
	result, err := Assign(inv)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			ReleaseAfterFailure(inv)
		}
	}()
	if err := types.PrintResult(result, inv.Conf.CNIVersion); err != nil {
		return cnierr.Internal("calico-ipam: %s: print the result: %v", inv, err)
	}
	return nil
}

// Assign is calico-ipam's ADD up to the result: it asks the agent for the
// workload's addresses under its handle and returns them as an IPAM result.
// When the agent's answer is unusable, the addresses are released again
// before the error returns. The calico plugin calls it in-process when its
// "ipam.type" is calico-ipam, so the addresses, the handle, the errors and
// the logged lines are the same as when it execs this plugin.
func Assign(inv *invocation.Invocation) (result *current.Result, err error) {
	ipam := inv.Conf.IPAM
	if !ipam.AssignIPv4 && !ipam.AssignIPv6 {
		return nil, cnierr.Config(`netconf: "ipam.assign_ipv4" and "ipam.assign_ipv6" are both false: there is nothing to assign`)
	}
	v4pools, v6pools := ipam.Pools()
	handle := inv.HandleID()
	ctx, cancel := agent.Ctx(agent.CallTimeout)
	defer cancel()
	resp, err := inv.Agent.AssignIPs(ctx, &agentpb.AssignIPsRequest{
		HandleId:   handle,
		Workload:   inv.WorkloadID(),
		AssignIpv4: ipam.AssignIPv4,
		AssignIpv6: ipam.AssignIPv6,
		Ipv4Pools:  v4pools,
		Ipv6Pools:  v6pools,
	})
	if err != nil {
		return nil, inv.Agent.Error("calico-ipam: assign addresses", err, types.ErrTryAgainLater)
	}
	defer func() {
		if err != nil {
			ReleaseAfterFailure(inv)
		}
	}()

	result = &current.Result{CNIVersion: current.ImplementedSpecVersion}
	var got4, got6 bool
	for _, s := range resp.GetIps() {
		ip, ipn, perr := net.ParseCIDR(s)
		if perr != nil {
			return nil, cnierr.Internal("calico-ipam: %s: the agent returned %q, which is not an address in CIDR form", inv, s)
		}
		ipn.IP = ip
		if ip.To4() != nil {
			got4 = true
			ipn.IP = ip.To4()
		} else {
			got6 = true
		}
		result.IPs = append(result.IPs, &current.IPConfig{Address: *ipn})
	}
	if ipam.AssignIPv4 && !got4 || ipam.AssignIPv6 && !got6 {
		return nil, cnierr.Internal("calico-ipam: %s: asked for IPv4=%t IPv6=%t but the agent assigned %q", inv, ipam.AssignIPv4, ipam.AssignIPv6, strings.Join(resp.GetIps(), ","))
	}
	inv.Log.Info("addresses assigned", "handle", handle, "ips", strings.Join(resp.GetIps(), ","))
	return result, nil
}

// ReleaseAfterFailure releases what Assign took for an ADD that then
// failed. Its own failure is only logged: the next DEL or GC releases them.
func ReleaseAfterFailure(inv *invocation.Invocation) {
	handle := inv.HandleID()
	ctx, cancel := agent.Ctx(agent.CallTimeout)
	defer cancel()
	if _, relErr := inv.Agent.ReleaseIPs(ctx, &agentpb.ReleaseIPsRequest{HandleId: handle, Workload: inv.WorkloadID()}); relErr != nil {
		inv.Log.Error("releasing the addresses of the failed ADD failed; the next DEL or GC releases them", "handle", handle, "err", relErr)
	}
}

// Del releases the handle's addresses. An unknown handle is success; an
// unreachable agent is an error (the addresses would leak otherwise).
func (p *Plugin) Del(args *skel.CmdArgs) (err error) {
	inv, err := invocation.Begin(PluginName, "DEL", args, p.stderr, true)
	if err != nil {
		return err
	}
	defer inv.End()
	return Release(inv)
}

// Release is calico-ipam's DEL: it frees every address of the workload's
// handle. The calico plugin calls it in-process, as Assign.
func Release(inv *invocation.Invocation) error {
	handle := inv.HandleID()
	ctx, cancel := agent.Ctx(agent.CallTimeout)
	defer cancel()
	resp, err := inv.Agent.ReleaseIPs(ctx, &agentpb.ReleaseIPsRequest{HandleId: handle, Workload: inv.WorkloadID()})
	if err != nil {
		return inv.Agent.Error(fmt.Sprintf("calico-ipam: release addresses of handle %s", handle), err, types.ErrTryAgainLater)
	}
	inv.Log.Info("addresses released", "handle", handle, "released", strings.Join(resp.GetReleased(), ","))
	return nil
}

// Check only proves the agent answers: whether the previous result's
// addresses are still allocated to the handle is checked by the calico
// plugin's CHECK, which asks the agent about the whole workload at once.
func (p *Plugin) Check(args *skel.CmdArgs) (err error) {
	inv, err := invocation.Begin(PluginName, "CHECK", args, p.stderr, true)
	if err != nil {
		return err
	}
	defer inv.End()
	return CheckAgent(inv)
}

// CheckAgent is calico-ipam's CHECK: the agent that holds the allocations
// answers. The calico plugin calls it in-process, as Assign.
func CheckAgent(inv *invocation.Invocation) error {
	ctx, cancel := agent.Ctx(agent.StatusTimeout)
	defer cancel()
	if _, err := inv.Agent.Status(ctx, &agentpb.StatusRequest{}); err != nil {
		return inv.Agent.Error("calico-ipam CHECK", err, types.ErrTryAgainLater)
	}
	return nil
}

// Status is the agent's readiness.
func (p *Plugin) Status(args *skel.CmdArgs) (err error) {
	inv, err := invocation.Begin(PluginName, "STATUS", args, p.stderr, false)
	if err != nil {
		return err
	}
	defer inv.End()
	return inv.AgentReady()
}

// GC releases this node's allocations whose attachment is not listed.
func (p *Plugin) GC(args *skel.CmdArgs) (err error) {
	inv, err := invocation.Begin(PluginName, "GC", args, p.stderr, false)
	if err != nil {
		return err
	}
	defer inv.End()
	valid, err := inv.ValidAttachments()
	if err != nil {
		return err
	}
	ctx, cancel := agent.Ctx(agent.CallTimeout)
	defer cancel()
	resp, err := inv.Agent.GarbageCollect(ctx, &agentpb.GarbageCollectRequest{Valid: valid})
	if err != nil {
		return inv.Agent.Error("calico-ipam GC", err, types.ErrTryAgainLater)
	}
	inv.Log.Info("garbage collected", "released_handles", strings.Join(resp.GetReleasedHandles(), ","))
	return nil
}
