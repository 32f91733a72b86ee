package calico

import (
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/tabbynet/tabby/api/agentpb"
	"github.com/tabbynet/tabby/cni-plugin/agent"
	"github.com/tabbynet/tabby/cni-plugin/cnierr"
	"github.com/tabbynet/tabby/cni-plugin/dataplane"
	"github.com/tabbynet/tabby/cni-plugin/invocation"
)

// Del removes the pod's network: the agent's endpoint and host route, the
// veth, then the addresses (delegated IPAM DEL). Everything already gone
// counts as removed. An unreachable agent is an error, never a silent
// success: the endpoint and route would outlive the pod.
func (p *Plugin) Del(args *skel.CmdArgs) (err error) {
	inv, err := invocation.Begin(PluginName, "DEL", args, p.stderr, true)
	if err != nil {
		return err
	}
	defer inv.End()
	if inv.Conf.IPAM.Type == "" {
		return cnierr.Config(`netconf: "ipam.type" is missing: set "ipam": {"type": "calico-ipam"} (or the IPAM plugin the pod was added with)`)
	}

	ctx, cancel := agent.Ctx(agent.CallTimeout)
	defer cancel()
	del, err := inv.Agent.DelWorkload(ctx, &agentpb.DelWorkloadRequest{Workload: inv.WorkloadID()})
	if err != nil {
		return inv.Agent.Error(fmt.Sprintf("%s: remove the workload endpoint", inv), err, types.ErrTryAgainLater)
	}
	found, err := dataplane.Teardown(args.Netns, args.IfName)
	if err != nil {
		return cnierr.Internal("%s: %v", inv, err)
	}
	if err := p.ipamDel(ctx, inv); err != nil {
		return ipamError(inv, err)
	}
	inv.Log.Info("pod network deleted", "endpoint_found", del.GetFound(), "veth_found", found)
	return nil
}
