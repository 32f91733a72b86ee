package calico

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/tabbynet/tabby/api/agentpb"
	"github.com/tabbynet/tabby/cni-plugin/agent"
	"github.com/tabbynet/tabby/cni-plugin/cnierr"
	"github.com/tabbynet/tabby/cni-plugin/invocation"
	"github.com/tabbynet/tabby/cni-plugin/netconf"
)

// Status reports whether ADDs can succeed now: the agent answers and is
// ready, and so does the IPAM plugin when it speaks CNI 1.1 (calico-ipam's
// STATUS would only ask the same agent again).
func (p *Plugin) Status(args *skel.CmdArgs) (err error) {
	inv, err := invocation.Begin(PluginName, "STATUS", args, p.stderr, false)
	if err != nil {
		return err
	}
	defer inv.End()
	if err := inv.AgentReady(); err != nil {
		return err
	}
	t := inv.Conf.IPAM.Type
	if t == "" {
		return cnierr.Config(`netconf: "ipam.type" is missing`)
	}
	if t == netconf.IPAMTypeCalico {
		return nil
	}
	ctx, cancel := agent.Ctx(agent.StatusTimeout)
	defer cancel()
	ok, err := p.ipamSupports(ctx, t, args.Path, "1.1.0")
	if err != nil {
		return cnierr.NotAvailable("plugin not available: IPAM plugin %q: %v", t, err)
	}
	if !ok {
		inv.Log.Debug("IPAM plugin predates CNI 1.1 STATUS; not asking it", "ipam", t)
		return nil
	}
	if err := invoke.DelegateStatus(ctx, t, args.StdinData, p.exec); err != nil {
		return cnierr.Wrap(types.ErrPluginNotAvailable, fmt.Sprintf("STATUS: IPAM plugin %q", t), err)
	}
	return nil
}

// ipamSupports reports whether the IPAM plugin speaks CNI version ver or
// later (STATUS and GC came with 1.1.0; Debian 12's reference plugins stop
// at 1.0.0, and an older plugin answers them with a confusing error).
func (p *Plugin) ipamSupports(ctx context.Context, ipamType, cniPath, ver string) (bool, error) {
	paths := filepath.SplitList(cniPath)
	var path string
	var err error
	if p.exec != nil {
		path, err = p.exec.FindInPath(ipamType, paths)
	} else {
		path, err = invoke.FindInPath(ipamType, paths)
	}
	if err != nil {
		return false, err
	}
	info, err := invoke.GetVersionInfo(ctx, path, p.exec)
	if err != nil {
		return false, fmt.Errorf("ask %s for its CNI versions: %w", path, err)
	}
	for _, v := range info.SupportedVersions() {
		if ge, err := version.GreaterThanOrEqualTo(v, ver); err == nil && ge {
			return true, nil
		}
	}
	return false, nil
}

// GC asks the agent to release the endpoints and calico-ipam allocations of
// this node whose attachment the runtime no longer lists, then passes GC on
// to any other IPAM plugin (calico-ipam's allocations are the agent's).
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
		return inv.Agent.Error("GC", err, types.ErrTryAgainLater)
	}
	inv.Log.Info("garbage collected", "valid_attachments", len(valid), "released_handles", len(resp.GetReleasedHandles()))
	if t := inv.Conf.IPAM.Type; t != "" && t != netconf.IPAMTypeCalico {
		ok, err := p.ipamSupports(ctx, t, args.Path, "1.1.0")
		if err != nil {
			return cnierr.Internal("GC: IPAM plugin %q: %v", t, err)
		}
		if !ok {
			inv.Log.Debug("IPAM plugin predates CNI 1.1 GC; not asking it", "ipam", t)
			return nil
		}
		if err := invoke.DelegateGC(ctx, t, args.StdinData, p.exec); err != nil {
			return cnierr.Wrap(types.ErrInternal, fmt.Sprintf("GC: IPAM plugin %q", t), err)
		}
	}
	return nil
}
