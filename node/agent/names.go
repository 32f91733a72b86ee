package agent

import (
	"fmt"
	"strings"

	"github.com/tabbynet/tabby/api/agentpb"
)

// Orchestrators, as WorkloadEndpoint.spec.orchestrator spells them.
const (
	OrchestratorK8s = "k8s"
	OrchestratorCNI = "cni"
)

// DefaultNamespace holds workloads that came without a namespace (the
// plugins put them there too).
const DefaultNamespace = "default"

// HandlePrefix starts the IPAM handle of every pod: "k8s-pod-network." +
// container ID, with calico.yaml's network name.
const HandlePrefix = "k8s-pod-network."

// workload is a validated agentpb.WorkloadID.
type workload struct {
	orchestrator string
	namespace    string
	pod          string
	containerID  string
	endpoint     string
}

// parseWorkload checks a request's workload identity. The orchestrator
// defaults from the pod: "k8s" with a pod name, "cni" without.
func parseWorkload(id *agentpb.WorkloadID) (workload, error) {
	if id == nil {
		return workload{}, fmt.Errorf("workload is missing: set container_id and endpoint (and namespace/pod for a Kubernetes pod)")
	}
	w := workload{
		orchestrator: strings.TrimSpace(id.GetOrchestrator()),
		namespace:    strings.TrimSpace(id.GetNamespace()),
		pod:          strings.TrimSpace(id.GetPod()),
		containerID:  strings.TrimSpace(id.GetContainerId()),
		endpoint:     strings.TrimSpace(id.GetEndpoint()),
	}
	if w.orchestrator == "" {
		w.orchestrator = OrchestratorCNI
		if w.pod != "" {
			w.orchestrator = OrchestratorK8s
		}
	}
	if w.namespace == "" {
		w.namespace = DefaultNamespace
	}
	switch {
	case w.orchestrator != OrchestratorK8s && w.orchestrator != OrchestratorCNI:
		return workload{}, fmt.Errorf("workload.orchestrator %q is not supported: use %q or %q", w.orchestrator, OrchestratorK8s, OrchestratorCNI)
	case w.containerID == "":
		return workload{}, fmt.Errorf("workload.container_id is empty: pass CNI_CONTAINERID")
	case w.endpoint == "":
		return workload{}, fmt.Errorf("workload.endpoint is empty: pass CNI_IFNAME (e.g. eth0)")
	case w.orchestrator == OrchestratorK8s && w.pod == "":
		return workload{}, fmt.Errorf("workload.pod is empty: a k8s workload needs its pod name (or use orchestrator %q)", OrchestratorCNI)
	}
	return w, nil
}

// handle is the workload's IPAM handle.
func (w workload) handle() string { return HandlePrefix + w.containerID }

func (w workload) String() string {
	if w.orchestrator == OrchestratorK8s {
		return fmt.Sprintf("pod %s/%s (container %s, %s)", w.namespace, w.pod, w.containerID, w.endpoint)
	}
	return fmt.Sprintf("container %s (%s)", w.containerID, w.endpoint)
}

// WorkloadEndpointName is Calico's name for a workload endpoint:
// <node>-k8s-<pod>-<endpoint> for a pod and <node>-cni-<containerID>-<endpoint>
// otherwise, with every '-' inside a segment doubled so the name can be
// split again. A segment may not be empty, start or end with '-'.
func WorkloadEndpointName(node, orchestrator, workload, endpoint string) (string, error) {
	segs := []struct{ field, value string }{
		{"node", node}, {"orchestrator", orchestrator}, {"workload", workload}, {"endpoint", endpoint},
	}
	if orchestrator == OrchestratorK8s {
		segs[2].field = "pod"
	} else if orchestrator == OrchestratorCNI {
		segs[2].field = "container ID"
	}
	parts := make([]string, len(segs))
	for i, s := range segs {
		switch {
		case s.value == "":
			return "", fmt.Errorf("workload endpoint name: %s is empty", s.field)
		case strings.HasPrefix(s.value, "-") || strings.HasSuffix(s.value, "-"):
			return "", fmt.Errorf("workload endpoint name: %s %q must not begin or end with '-'", s.field, s.value)
		}
		parts[i] = strings.ReplaceAll(s.value, "-", "--")
	}
	return strings.Join(parts, "-"), nil
}

// endpointName names w on node.
func (w workload) endpointName(node string) (string, error) {
	id := w.pod
	if w.orchestrator == OrchestratorCNI {
		id = w.containerID
	}
	return WorkloadEndpointName(node, w.orchestrator, id, w.endpoint)
}
