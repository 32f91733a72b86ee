package agent

import (
	"testing"

	"github.com/tabbynet/tabby/api/agentpb"
)

func TestWorkloadEndpointName(t *testing.T) {
	for _, tc := range []struct {
		node, orch, workload, endpoint string
		want                           string
	}{
		{"node1", "k8s", "nginx", "eth0", "node1-k8s-nginx-eth0"},
		{"node-1", "k8s", "web-7d9f-abcde", "eth0", "node--1-k8s-web--7d9f--abcde-eth0"},
		{"n.example.com", "cni", "4f3e2d1c", "eth0", "n.example.com-cni-4f3e2d1c-eth0"},
		{"n1", "k8s", "p", "net-1", "n1-k8s-p-net--1"},
	} {
		got, err := WorkloadEndpointName(tc.node, tc.orch, tc.workload, tc.endpoint)
		if err != nil || got != tc.want {
			t.Errorf("WorkloadEndpointName(%q, %q, %q, %q) = %q, %v; want %q", tc.node, tc.orch, tc.workload, tc.endpoint, got, err, tc.want)
		}
	}
	for _, tc := range [][4]string{
		{"", "k8s", "p", "eth0"},
		{"n1", "k8s", "", "eth0"},
		{"n1", "k8s", "-p", "eth0"},
		{"n1", "k8s", "p-", "eth0"},
		{"n1", "k8s", "p", ""},
	} {
		if got, err := WorkloadEndpointName(tc[0], tc[1], tc[2], tc[3]); err == nil {
			t.Errorf("WorkloadEndpointName(%q) = %q, want an error", tc, got)
		}
	}
}

func TestParseWorkload(t *testing.T) {
	w, err := parseWorkload(&agentpb.WorkloadID{ContainerId: "abc", Endpoint: "eth0"})
	if err != nil || w.orchestrator != OrchestratorCNI || w.namespace != DefaultNamespace {
		t.Errorf("no pod: %+v %v, want orchestrator cni in namespace default", w, err)
	}
	if n, _ := w.endpointName("n1"); n != "n1-cni-abc-eth0" {
		t.Errorf("cni endpoint name %q", n)
	}
	w, err = parseWorkload(&agentpb.WorkloadID{Namespace: "ns1", Pod: "p1", ContainerId: "abc", Endpoint: "eth0"})
	if err != nil || w.orchestrator != OrchestratorK8s || w.handle() != "k8s-pod-network.abc" {
		t.Errorf("pod: %+v %v", w, err)
	}
	for _, id := range []*agentpb.WorkloadID{
		nil,
		{Endpoint: "eth0"},
		{ContainerId: "abc"},
		{Orchestrator: "k8s", ContainerId: "abc", Endpoint: "eth0"},
		{Orchestrator: "mesos", ContainerId: "abc", Endpoint: "eth0"},
	} {
		if _, err := parseWorkload(id); err == nil {
			t.Errorf("parseWorkload(%v) accepted", id)
		}
	}
}
