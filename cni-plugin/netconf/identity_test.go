package netconf

import (
	"strings"
	"testing"
)

// The expected names were computed outside Go with
// `printf '%s' '<namespace>.<pod>' | sha1sum | cut -c1-11`.
func TestVethNameKnownValues(t *testing.T) {
	tests := []struct{ ns, pod, want string }{
		{"default", "nginx", "calic440f455693"},
		{"kube-system", "coredns-5d78c9869d-abcde", "cali4d5f75c480c"},
		{"default", "busybox-0", "cali796e814e27c"},
		{"my-ns", "web-7f9c", "calid3b16f23dcc"},
	}
	for _, tt := range tests {
		got := VethName(tt.ns, tt.pod)
		if got != tt.want {
			t.Errorf("VethName(%q, %q) = %q, want %q", tt.ns, tt.pod, got, tt.want)
		}
		if len(got) != 15 {
			t.Errorf("VethName(%q, %q) has %d characters, the kernel allows 15", tt.ns, tt.pod, len(got))
		}
	}
}

func TestNewWorkloadFromK8sArgs(t *testing.T) {
	w, err := NewWorkload("abc123", "eth0",
		"IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-5d78c9869d-abcde;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=1f2e")
	if err != nil {
		t.Fatal(err)
	}
	want := Workload{Orchestrator: "k8s", Namespace: "kube-system", Pod: "coredns-5d78c9869d-abcde",
		ContainerID: "abc123", InfraContainerID: "abc123", Endpoint: "eth0"}
	if w != want {
		t.Errorf("got %+v\nwant %+v", w, want)
	}
	if got := w.HostVethName(); got != "cali4d5f75c480c" {
		t.Errorf("HostVethName() = %q", got)
	}
}

func TestNewWorkloadFallsBackToContainerID(t *testing.T) {
	for _, args := range []string{"", "IgnoreUnknown=1", "K8S_POD_NAMESPACE=default"} {
		w, err := NewWorkload("0123456789abcdef", "eth0", args)
		if err != nil {
			t.Fatalf("CNI_ARGS %q: %v", args, err)
		}
		if w.Orchestrator != OrchestratorCNI || w.Pod != "0123456789abcdef" || w.Namespace != "default" {
			t.Errorf("CNI_ARGS %q: got %+v, want the container ID as the workload", args, w)
		}
		// sha1("default.0123456789abcdef")[:11], computed with sha1sum.
		if got := w.HostVethName(); got != "cali06d1e9415f2" {
			t.Errorf("CNI_ARGS %q: HostVethName() = %q", args, got)
		}
	}
}

func TestNewWorkloadUnknownArgsIgnoredWithoutIgnoreUnknown(t *testing.T) {
	w, err := NewWorkload("c1", "eth0", "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;SOMETHING_NEW=x")
	if err != nil {
		t.Fatal(err)
	}
	if w.Pod != "p" || w.Namespace != "ns" {
		t.Errorf("got %+v", w)
	}
}

func TestNewWorkloadErrors(t *testing.T) {
	tests := []struct{ cid, ifname, args, want string }{
		{"", "eth0", "", "CNI_CONTAINERID is empty"},
		{"c", "", "", "CNI_IFNAME is empty"},
		{"c", "eth0", "K8S_POD_NAME", `CNI_ARGS "K8S_POD_NAME": ARGS: invalid pair "K8S_POD_NAME"`},
		{"c", "eth0", "K8S_POD_NAME=a=b", `invalid pair "K8S_POD_NAME=a=b"`},
	}
	for _, tt := range tests {
		_, err := NewWorkload(tt.cid, tt.ifname, tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewWorkload(%q, %q, %q) error = %v, want it to contain %q", tt.cid, tt.ifname, tt.args, err, tt.want)
		}
	}
}

func TestHandleID(t *testing.T) {
	if got := HandleID("abc"); got != "k8s-pod-network.abc" {
		t.Errorf("HandleID = %q", got)
	}
}
