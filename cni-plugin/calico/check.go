package calico

import (
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/tabbynet/tabby/api/agentpb"
	"github.com/tabbynet/tabby/cni-plugin/agent"
	"github.com/tabbynet/tabby/cni-plugin/cnierr"
	"github.com/tabbynet/tabby/cni-plugin/dataplane"
	"github.com/tabbynet/tabby/cni-plugin/invocation"
	"github.com/tabbynet/tabby/cni-plugin/netconf"
)

// Check compares the kernel and the agent's records with the previous
// result (Calico's own CHECK does nothing). Every difference is listed.
func (p *Plugin) Check(args *skel.CmdArgs) (err error) {
	inv, err := invocation.Begin(PluginName, "CHECK", args, p.stderr, true)
	if err != nil {
		return err
	}
	defer inv.End()
	conf := inv.Conf
	if conf.IPAM.Type == "" {
		return cnierr.Config(`netconf: "ipam.type" is missing`)
	}
	prev, err := inv.PrevResult()
	if err != nil {
		return err
	}
	if prev == nil {
		return cnierr.Config("%s: the netconf has no prevResult to check against", inv)
	}
	want, err := expectFromResult(inv, prev)
	if err != nil {
		return err
	}

	var problems []string
	hostNS, err := ns.GetCurrentNS()
	if err != nil {
		return cnierr.Internal("%s: open the host netns: %v", inv, err)
	}
	defer hostNS.Close()
	if err := dataplane.Check(hostNS, want); err != nil {
		problems = append(problems, err.Error())
	}

	ips := make([]string, len(want.Addrs))
	for i, a := range want.Addrs {
		ips[i] = a.String()
	}
	req := &agentpb.CheckWorkloadRequest{Workload: inv.WorkloadID(), InterfaceName: want.HostIfName, Ips: ips}
	if conf.IPAM.Type == netconf.IPAMTypeCalico {
		// Only calico-ipam's allocations live in the agent's IPAM; with
		// another IPAM plugin that plugin's own CHECK below covers them.
		req.HandleId = inv.HandleID()
	}
	ctx, cancel := agent.Ctx(agent.CallTimeout)
	defer cancel()
	ck, err := inv.Agent.CheckWorkload(ctx, req)
	if err != nil {
		return inv.Agent.Error(fmt.Sprintf("%s: ask the agent", inv), err, types.ErrTryAgainLater)
	}
	for _, pr := range ck.GetProblems() {
		problems = append(problems, "agent: "+pr)
	}
	if err := p.ipamCheck(ctx, inv); err != nil {
		problems = append(problems, fmt.Sprintf("IPAM plugin %q: %v", conf.IPAM.Type, err))
	}
	if len(problems) > 0 {
		return cnierr.Internal("%s: the pod's network differs from the previous result: %s", inv, strings.Join(problems, "; "))
	}
	return nil
}

// expectFromResult finds the pod interface (CNI_IFNAME in CNI_NETNS) in the
// previous result and the addresses on it.
func expectFromResult(inv *invocation.Invocation, prev *current.Result) (dataplane.Expect, error) {
	args := inv.Args
	want := dataplane.Expect{Spec: dataplane.Spec{
		HostIfName: inv.Workload.HostVethName(),
		PodIfName:  args.IfName,
		PodNetNS:   args.Netns,
	}}
	podIdx := -1
	for i, itf := range prev.Interfaces {
		if itf.Name == args.IfName && itf.Sandbox == args.Netns {
			podIdx = i
			want.MTU = itf.Mtu
			if itf.Mac != "" {
				mac, err := net.ParseMAC(itf.Mac)
				if err != nil {
					return want, cnierr.Config("%s: prevResult interface %s has a bad MAC %q: %v", inv, itf.Name, itf.Mac, err)
				}
				want.PodMAC = mac
			}
		}
	}
	if podIdx < 0 {
		return want, cnierr.Config("%s: prevResult has no interface %s with sandbox %s", inv, args.IfName, args.Netns)
	}
	for _, ipc := range prev.IPs {
		if ipc.Interface == nil || *ipc.Interface == podIdx {
			want.Addrs = append(want.Addrs, ipc.Address)
		}
	}
	if len(want.Addrs) == 0 {
		return want, cnierr.Config("%s: prevResult has no addresses on %s", inv, args.IfName)
	}
	return want, nil
}
