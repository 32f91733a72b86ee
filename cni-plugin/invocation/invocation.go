package invocation

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/tabbynet/tabby/api/agentpb"
	"github.com/tabbynet/tabby/cni-plugin/agent"
	"github.com/tabbynet/tabby/cni-plugin/cnierr"
	"github.com/tabbynet/tabby/cni-plugin/cnilog"
	"github.com/tabbynet/tabby/cni-plugin/netconf"
)

// Invocation is one run of a plugin command.
type Invocation struct {
	Cmd      string
	Args     *skel.CmdArgs
	Conf     *netconf.NetConf
	Workload netconf.Workload // zero for STATUS and GC
	Log      *slog.Logger
	Agent    *agent.Client
	closeLog io.Closer
}

// Begin parses and sets up everything a command needs. withWorkload is
// false for STATUS and GC, which have no container.
func Begin(plugin, cmd string, args *skel.CmdArgs, stderr io.Writer, withWorkload bool) (*Invocation, error) {
	conf, err := netconf.Parse(args.StdinData)
	if err != nil {
		return nil, cnierr.Config("%v", err)
	}
	log, closer := cnilog.New(stderr, plugin, cnilog.Options{
		Level:        conf.SlogLevel(),
		FilePath:     conf.LogFilePath,
		FileMaxSize:  conf.LogFileMaxSize,
		FileMaxAge:   conf.LogFileMaxAge,
		FileMaxCount: conf.LogFileMaxCount,
	})
	inv := &Invocation{Cmd: cmd, Args: args, Conf: conf, Log: log.With("cmd", cmd), closeLog: closer}
	if withWorkload {
		wl, err := netconf.NewWorkload(args.ContainerID, args.IfName, args.Args)
		if err != nil {
			closer.Close()
			return nil, cnierr.Env("%s: %v", cmd, err)
		}
		inv.Workload = wl
		inv.Log = inv.Log.With("container", wl.ContainerID, "namespace", wl.Namespace, "pod", wl.Pod, "ifname", wl.Endpoint)
		if wl.InfraContainerID != "" && wl.InfraContainerID != wl.ContainerID {
			inv.Log.Debug("K8S_POD_INFRA_CONTAINER_ID differs from CNI_CONTAINERID; using CNI_CONTAINERID", "infra_container", wl.InfraContainerID)
		}
	}
	c, err := agent.Dial(conf.AgentSocket)
	if err != nil {
		closer.Close()
		return nil, cnierr.Internal("%v", err)
	}
	inv.Agent = c
	return inv, nil
}

// End releases the agent connection and the log file.
func (inv *Invocation) End() {
	_ = inv.Agent.Close()
	_ = inv.closeLog.Close()
}

// HandleID is the workload's IPAM handle.
func (inv *Invocation) HandleID() string {
	return netconf.HandleID(inv.Workload.ContainerID)
}

// WorkloadID is the workload as the agent API names it.
func (inv *Invocation) WorkloadID() *agentpb.WorkloadID {
	w := inv.Workload
	return &agentpb.WorkloadID{
		Orchestrator: w.Orchestrator,
		Namespace:    w.Namespace,
		Pod:          w.Pod,
		ContainerId:  w.ContainerID,
		Endpoint:     w.Endpoint,
	}
}

// PrevResult returns the netconf's prevResult as a current result, or nil
// when there is none.
func (inv *Invocation) PrevResult() (*current.Result, error) {
	var pc types.PluginConf
	if err := json.Unmarshal(inv.Args.StdinData, &pc); err != nil {
		return nil, cnierr.Config("netconf: %v", err)
	}
	if pc.RawPrevResult == nil {
		return nil, nil
	}
	if err := version.ParsePrevResult(&pc); err != nil {
		return nil, cnierr.Config("netconf: \"prevResult\": %v", err)
	}
	res, err := current.NewResultFromResult(pc.PrevResult)
	if err != nil {
		return nil, cnierr.Config("netconf: \"prevResult\": %v", err)
	}
	return res, nil
}

// ValidAttachments decodes GC's cni.dev/valid-attachments into the agent's
// terms.
func (inv *Invocation) ValidAttachments() ([]*agentpb.WorkloadID, error) {
	var conf struct {
		Valid []types.GCAttachment `json:"cni.dev/valid-attachments"`
	}
	if err := json.Unmarshal(inv.Args.StdinData, &conf); err != nil {
		return nil, cnierr.Config("netconf: %q: %v", netconf.ValidAttachmentsKey, err)
	}
	out := make([]*agentpb.WorkloadID, 0, len(conf.Valid))
	for _, a := range conf.Valid {
		if a.ContainerID == "" {
			return nil, cnierr.Config("netconf: %q: an attachment has no containerID", netconf.ValidAttachmentsKey)
		}
		out = append(out, &agentpb.WorkloadID{ContainerId: a.ContainerID, Endpoint: a.IfName})
	}
	return out, nil
}

// String is for messages: "ADD pod ns/name (container ..., eth0)".
func (inv *Invocation) String() string {
	if inv.Workload.ContainerID == "" {
		return inv.Cmd
	}
	return fmt.Sprintf("%s %s", inv.Cmd, inv.Workload)
}

// AgentReady is STATUS's check of the agent, for both plugins: code 50
// ("plugin not available") unless the agent answers and says it is ready.
func (inv *Invocation) AgentReady() error {
	ctx, cancel := agent.Ctx(agent.StatusTimeout)
	defer cancel()
	st, err := inv.Agent.Status(ctx, &agentpb.StatusRequest{})
	if err != nil {
		if inv.Agent.Unreachable(err) {
			return cnierr.NotAvailable("plugin not available: %s", inv.Agent.DownMessage(err))
		}
		return cnierr.NotAvailable("plugin not available: calico-node agent at %s: %v", inv.Conf.AgentSocket, err)
	}
	if !st.GetReady() {
		return cnierr.NotAvailable("plugin not available: the calico-node agent of node %q at %s is not ready yet (see its log and health endpoint)", st.GetNodeName(), inv.Conf.AgentSocket)
	}
	return nil
}
