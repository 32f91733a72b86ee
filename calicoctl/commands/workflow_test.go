package commands_test

import (
	"fmt"
	"strings"
	"testing"

	v3 "github.com/tabbynet/tabby/api/v3"
)

func TestWriteSemantics(t *testing.T) {
	h := newHarness(t)
	p1 := pool("p1", "  cidr: 10.1.0.0/16\n")
	p2 := pool("p2", "  cidr: 10.2.0.0/16\n")

	r := h.ok("create", "-f", h.file("two.yaml", p1+"---\n"+p2))
	if r.stdout != "Successfully created 2 'IPPool' resource(s)\n" {
		t.Fatalf("create: %q", r.stdout)
	}

	t.Run("skip-exists counts existing resources as created", func(t *testing.T) {
		h.t = t
		p3 := pool("p3", "  cidr: 10.3.0.0/16\n")
		r := h.ok("create", "--skip-exists", "-f", h.file("three.yaml", p1+"---\n"+p2+"---\n"+p3))
		if r.stdout != "Successfully created 3 'IPPool' resource(s)\n" {
			t.Fatalf("create --skip-exists: %q", r.stdout)
		}
		h.ok("get", "ippool", "p3")
	})

	t.Run("apply creates and updates", func(t *testing.T) {
		h.t = t
		r := h.ok("apply", "-f", h.file("apply.yaml", pool("p1", "  cidr: 10.1.0.0/16\n  natOutgoing: true\n")+"---\n"+pool("p4", "  cidr: 10.4.0.0/16\n")))
		if r.stdout != "Successfully applied 2 'IPPool' resource(s)\n" {
			t.Fatalf("apply: %q", r.stdout)
		}
		got := h.ok("get", "ippool", "-o", "custom-columns=NAME,NAT").stdout
		if !strings.Contains(got, "p1     true") || !strings.Contains(got, "p4     false") {
			t.Errorf("after apply:\n%s", got)
		}
	})

	t.Run("a current resourceVersion is honoured", func(t *testing.T) {
		h.t = t
		cur := decodeOne(t, h.ok("get", "ippool", "p2", "-o", "yaml").stdout).(*v3.IPPool)
		cur.Spec.Disabled = true
		doc, err := v3.EncodeYAML([]v3.Resource{cur})
		if err != nil {
			t.Fatal(err)
		}
		r := h.ok("replace", "-f", h.file("p2-current.yaml", string(doc)))
		if r.stdout != "Successfully replaced 1 'IPPool' resource(s)\n" {
			t.Fatalf("replace: %q", r.stdout)
		}
		// The same file again is now stale.
		r = h.run("", "replace", "-f", h.dir+"/p2-current.yaml")
		if r.err == nil || !strings.Contains(r.stderr, "re-read it") {
			t.Fatalf("second replace with the old resourceVersion:\n%s", r)
		}
	})

	t.Run("a mid-way datastore failure reports what was and was not written", func(t *testing.T) {
		h.t = t
		// etcd refuses a request over its 1.5 MiB limit: the second document
		// is valid but cannot be stored.
		nets := make([]string, 0, 140000)
		for i := range 140000 {
			nets = append(nets, fmt.Sprintf("10.%d.%d.%d/32", i>>16, (i>>8)&255, i&255))
		}
		huge := hdr + "kind: GlobalNetworkSet\nmetadata:\n  name: huge\nspec:\n  nets: [" + strings.Join(nets, ", ") + "]\n"
		path := h.file("partial.yaml", pool("m1", "  cidr: 10.101.0.0/16\n")+"---\n"+huge+"---\n"+pool("m3", "  cidr: 10.103.0.0/16\n"))
		r := h.run("", "create", "-f", path)
		if r.err == nil {
			t.Fatalf("create succeeded:\n%s", r)
		}
		wantOut := "Partial success: created the first 1 out of 3 resources:\n  " + path + `: document 1: IPPool "m1"` + "\n"
		if r.stdout != wantOut {
			t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, wantOut)
		}
		for _, want := range []string{
			"hit error: " + path + ": document 2: ",
			"not created (2):\n  " + path + `: document 2: GlobalNetworkSet "huge"` + "\n  " + path + `: document 3: IPPool "m3"`,
		} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		h.ok("get", "ippool", "m1")
		if r := h.run("", "get", "ippool", "m3"); r.err == nil {
			t.Error("m3 was written after the failure")
		}
	})

	t.Run("delete by file and skip-not-exists", func(t *testing.T) {
		h.t = t
		r := h.ok("delete", "-f", h.dir+"/two.yaml")
		if r.stdout != "Successfully deleted 2 'IPPool' resource(s)\n" {
			t.Fatalf("delete -f: %q", r.stdout)
		}
		r = h.ok("delete", "ippools", "p1", "p3", "--skip-not-exists")
		if r.stdout != "Successfully deleted 2 'IPPool' resource(s)\n" {
			t.Fatalf("delete --skip-not-exists: %q", r.stdout)
		}
		if r := h.run("", "get", "ippool", "p3"); r.err == nil {
			t.Error("p3 still exists")
		}
	})
}

func TestPatchAndLabel(t *testing.T) {
	h := newHarness(t)
	h.ok("create", "-f", h.file("seed.yaml", pool("p1", "  cidr: 10.1.0.0/16\n  ipipMode: Always\n")+"---\n"+pool("p2", "  cidr: 10.2.0.0/16\n")+"---\n"+
		hdr+"kind: Node\nmetadata:\n  name: node1\nspec:\n  bgp:\n    ipv4Address: 192.0.2.10/24\n"))

	r := h.ok("patch", "ippool", "p1", "-p", `{"spec":{"ipipMode":"Never","vxlanMode":"CrossSubnet"}}`)
	if r.stdout != "Successfully patched 1 'IPPool' resource\n" {
		t.Fatalf("patch: %q", r.stdout)
	}
	got := h.ok("get", "ippool", "p1", "-o", "custom-columns=IPIPMODE,VXLANMODE").stdout
	if !strings.Contains(got, "Never      CrossSubnet") {
		t.Errorf("after merge patch:\n%s", got)
	}
	h.ok("patch", "pool", "p1", "--type", "json", "-p", `[{"op":"replace","path":"/spec/natOutgoing","value":true}]`)
	h.ok("patch", "node", "node1", "-p", "spec:\n  bgp:\n    routeReflectorClusterID: 224.0.0.1\n")
	node := decodeOne(t, h.ok("get", "node", "node1", "-o", "yaml").stdout).(*v3.Node)
	if node.Spec.BGP.RouteReflectorClusterID != "224.0.0.1" || node.Spec.BGP.IPv4Address != "192.0.2.10/24" {
		t.Errorf("YAML patch: %+v", node.Spec.BGP)
	}
	if r := h.run("", "patch", "ippool", "p2", "-p", `{"spec":{"cidr":"10.1.128.0/17"}}`); r.err == nil ||
		!strings.Contains(r.stderr, "IPPool CIDR cannot be modified") {
		t.Errorf("patching a CIDR:\n%s", r)
	}

	for _, step := range []struct {
		args []string
		out  string
	}{
		{[]string{"label", "nodes", "node1", "rack=r1"}, "Successfully set label rack on nodes node1\n"},
		{[]string{"label", "nodes", "node1", "rack=r2", "--overwrite"}, "Successfully updated label rack on nodes node1\n"},
		{[]string{"label", "nodes", "node1", "zone=z1"}, "Successfully set label zone on nodes node1\n"},
		{[]string{"label", "nodes", "node1", "rack", "--remove"}, "Successfully removed label rack from nodes node1\n"},
	} {
		if r := h.ok(step.args...); r.stdout != step.out {
			t.Errorf("%v printed %q, want %q", step.args, r.stdout, step.out)
		}
	}
	labels := decodeOne(t, h.ok("get", "node", "node1", "-o", "yaml").stdout).GetLabels()
	if len(labels) != 1 || labels["zone"] != "z1" {
		t.Errorf("labels %v, want zone=z1 only", labels)
	}
}

func TestInputSources(t *testing.T) {
	h := newHarness(t)
	t.Run("stdin", func(t *testing.T) {
		h.t = t
		r := h.run(pool("s1", "  cidr: 10.1.0.0/16\n"), "apply", "-f", "-")
		if r.err != nil || r.stdout != "Successfully applied 1 'IPPool' resource(s)\n" {
			t.Fatalf("apply from stdin:\n%s", r)
		}
	})
	t.Run("JSON and kind List", func(t *testing.T) {
		h.t = t
		list := `{"apiVersion":"projectcalico.org/v3","kind":"List","items":[
			{"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"j1"},"spec":{"cidr":"10.2.0.0/16"}},
			{"apiVersion":"projectcalico.org/v3","kind":"BGPPeer","metadata":{"name":"j2"},"spec":{"peerIP":"192.0.2.7","asNumber":65007}}]}`
		r := h.ok("create", "-f", h.file("list.json", list))
		if r.stdout != "Successfully created 2 resource(s)\n" {
			t.Fatalf("create of a List: %q", r.stdout)
		}
	})
	t.Run("directory, sorted, recursive only when asked", func(t *testing.T) {
		h.t = t
		h.file("dir/b.yaml", pool("d2", "  cidr: 10.4.0.0/16\n"))
		h.file("dir/a.yml", pool("d1", "  cidr: 10.3.0.0/16\n"))
		h.file("dir/notes.txt", "not a resource")
		h.file("dir/sub/c.json", `{"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"d3"},"spec":{"cidr":"10.5.0.0/16"}}`)
		r := h.ok("validate", "-f", h.dir+"/dir")
		if r.stdout != "Successfully validated 2 'IPPool' resource(s)\n" {
			t.Fatalf("validate dir: %q", r.stdout)
		}
		r = h.ok("create", "-f", h.dir+"/dir", "--recursive")
		if r.stdout != "Successfully created 3 'IPPool' resource(s)\n" {
			t.Fatalf("create -R: %q", r.stdout)
		}
		// Order: the files' names, then the subdirectory.
		r = h.ok("delete", "-f", h.dir+"/dir", "-R")
		if r.stdout != "Successfully deleted 3 'IPPool' resource(s)\n" {
			t.Fatalf("delete -R: %q", r.stdout)
		}
	})
}

func TestValidateNeedsNoDatastore(t *testing.T) {
	h := &harness{t: t, env: map[string]string{"ETCD_ENDPOINTS": fmt.Sprintf("http://127.0.0.1:%d", closedPort(t))}, dir: t.TempDir()}
	good := h.file("good.yaml", pool("a", "  cidr: 10.1.0.0/16\n")+"---\n"+peerDoc("b", "  peerIP: 192.0.2.1\n  asNumber: 65001\n"))
	r := h.ok("validate", "-f", good)
	if r.stdout != "Successfully validated 2 resource(s)\n" {
		t.Fatalf("validate: %q", r.stdout)
	}
	bad := h.file("bad.yaml", pool("a", "  cidr: 10.1.0.0/16\n")+"---\n"+pool("b", "  cidr: 10.1.0.0/24\n")+"---\n"+pool("c", "  cidr: 10.9.0.0/16\n  blockSize: 99\n"))
	r = h.run("", "validate", "-f", bad)
	for _, want := range []string{"2 of 3 resources are invalid", "bad.yaml: document 2", "overlaps", "bad.yaml: document 3", "spec.blockSize"} {
		if r.err == nil || !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r)
		}
	}
}

func TestVersion(t *testing.T) {
	h := newHarness(t)
	r := h.ok("version")
	want := "Client Version:    dev\nGit commit:        unknown\nCluster Version:   unknown\nCluster Type:      unknown\n"
	if r.stdout != want {
		t.Errorf("version:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = h.ok("version", "--client")
	if r.stdout != "Client Version:    dev\nGit commit:        unknown\n" {
		t.Errorf("version --client: %q", r.stdout)
	}
	h.env["ETCD_ENDPOINTS"] = fmt.Sprintf("http://127.0.0.1:%d", closedPort(t))
	r = h.run("", "version")
	if r.err == nil || !strings.Contains(r.stderr, "unable to retrieve Cluster Version or Type") ||
		!strings.HasPrefix(r.stdout, "Client Version:    dev\n") {
		t.Errorf("version without a datastore:\n%s", r)
	}
}
