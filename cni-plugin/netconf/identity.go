package netconf

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
)

// Orchestrators, as WorkloadEndpoint.spec.orchestrator spells them.
const (
	OrchestratorK8s = "k8s"
	OrchestratorCNI = "cni"
)

// DefaultNamespace holds workloads that came without a Kubernetes namespace.
const DefaultNamespace = "default"

// VethPrefix starts every host-side veth name (Felix's InterfacePrefix).
const VethPrefix = "cali"

// K8sArgs are the CNI_ARGS kubelet (through the container runtime) passes.
// Unknown keys (IgnoreUnknown, K8S_POD_UID, ...) are ignored.
type K8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE          types.UnmarshallableString //nolint:revive // the CNI_ARGS key
	K8S_POD_NAME               types.UnmarshallableString //nolint:revive
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString //nolint:revive
}

// ParseArgs parses CNI_ARGS ("K=V;K2=V2"). Unknown keys are ignored even
// when the runtime did not send IgnoreUnknown=1 (only an explicit
// IgnoreUnknown=false makes them an error).
func ParseArgs(cniArgs string) (K8sArgs, error) {
	a := K8sArgs{CommonArgs: types.CommonArgs{IgnoreUnknown: true}}
	if strings.TrimSpace(cniArgs) == "" {
		return a, nil
	}
	if err := types.LoadArgs(cniArgs, &a); err != nil {
		return K8sArgs{}, fmt.Errorf("CNI_ARGS %q: %w", cniArgs, err)
	}
	return a, nil
}

// Workload is one pod interface: who it belongs to and where it lives.
type Workload struct {
	Orchestrator string // OrchestratorK8s or OrchestratorCNI
	Namespace    string
	Pod          string // the container ID when CNI_ARGS named no pod
	ContainerID  string // CNI_CONTAINERID
	// InfraContainerID is K8S_POD_INFRA_CONTAINER_ID when given; it is
	// informational (handles and GC use CNI_CONTAINERID, the ID the runtime
	// also lists in GC's valid attachments).
	InfraContainerID string
	Endpoint         string // CNI_IFNAME
}

// NewWorkload derives the workload from CNI_CONTAINERID, CNI_IFNAME and
// CNI_ARGS. With K8S_POD_NAME the pod is a Kubernetes pod; without it the
// workload is named by its container ID (orchestrator "cni", namespace
// "default"), which is not an error.
func NewWorkload(containerID, ifName, cniArgs string) (Workload, error) {
	if containerID == "" {
		return Workload{}, errors.New("CNI_CONTAINERID is empty")
	}
	if ifName == "" {
		return Workload{}, errors.New("CNI_IFNAME is empty")
	}
	a, err := ParseArgs(cniArgs)
	if err != nil {
		return Workload{}, err
	}
	w := Workload{
		Orchestrator:     OrchestratorK8s,
		Namespace:        strings.TrimSpace(string(a.K8S_POD_NAMESPACE)),
		Pod:              strings.TrimSpace(string(a.K8S_POD_NAME)),
		ContainerID:      containerID,
		InfraContainerID: strings.TrimSpace(string(a.K8S_POD_INFRA_CONTAINER_ID)),
		Endpoint:         ifName,
	}
	if w.Pod == "" {
		w.Orchestrator = OrchestratorCNI
		w.Pod = containerID
	}
	if w.Namespace == "" {
		w.Namespace = DefaultNamespace
	}
	return w, nil
}

// HostVethName is Calico's host-side interface name for the workload:
// "cali" + the first 11 hex characters of sha1("<namespace>.<pod>"), which
// is 15 characters, the kernel's limit. (For a workload without a pod name,
// Calico uses "cali" + the first 11 characters of the container ID, which
// collide for IDs with a common prefix; Tabby hashes "default.<containerID>"
// instead, by the same rule as for pods.)
func (w Workload) HostVethName() string {
	return VethName(w.Namespace, w.Pod)
}

// VethName is "cali" + sha1("<namespace>.<pod>")[:11] in hex.
func VethName(namespace, pod string) string {
	sum := sha1.Sum([]byte(namespace + "." + pod))
	return VethPrefix + hex.EncodeToString(sum[:])[:11]
}

// HandlePrefix starts every pod's IPAM handle. It is the agent API's fixed
// prefix (the agent's GC finds pod handles by it). Calico builds it from the
// netconf's network name, which is "k8s-pod-network" in calico.yaml, so the
// two agree there; Tabby keeps it fixed whatever the network is called.
const HandlePrefix = "k8s-pod-network."

// HandleID is the workload's IPAM handle, "k8s-pod-network.<containerID>".
func HandleID(containerID string) string {
	return HandlePrefix + containerID
}

// String names the workload in logs and errors.
func (w Workload) String() string {
	if w.Orchestrator == OrchestratorK8s {
		return fmt.Sprintf("pod %s/%s (container %s, %s)", w.Namespace, w.Pod, w.ContainerID, w.Endpoint)
	}
	return fmt.Sprintf("container %s (%s)", w.ContainerID, w.Endpoint)
}

// ExpectedNodename is the node name the netconf asks for, and where it came
// from: "nodename" (or kubernetes.node_name) when set, else the first line of
// nodename_file when that file exists. Empty means the netconf does not say,
// and the agent's own name is used. A missing nodename file is not an error
// even without nodename_file_optional: unlike Calico's plugin, Tabby's asks
// the running agent, which is a better proof that calico-node is up than a
// file it left behind.
func (c *NetConf) ExpectedNodename(readFile func(string) ([]byte, error)) (name, source string, err error) {
	if n := strings.TrimSpace(c.Nodename); n != "" {
		return n, `netconf "nodename"`, nil
	}
	b, err := readFile(c.NodenameFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", "", nil
		}
		return "", "", fmt.Errorf("read nodename file %s: %w", c.NodenameFile, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line), "nodename file " + c.NodenameFile, nil
}
