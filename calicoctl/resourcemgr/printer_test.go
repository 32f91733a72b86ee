package resourcemgr

import (
	"bytes"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
)

type fixedLookup struct {
	asn   string
	calls int
}

func (f *fixedLookup) DefaultASNumber() string { f.calls++; return f.asn }

func asn(n uint32) *v3.ASNumber { a := v3.ASNumber(n); return &a }

func pools() []v3.Resource {
	return []v3.Resource{
		&v3.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "default-ipv4-ippool"}, Spec: v3.IPPoolSpec{
			CIDR: "192.168.0.0/16", IPIPMode: v3.EncapAlways, NATOutgoing: true, NodeSelector: "all()", BlockSize: 26}},
		&v3.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p2"}, Spec: v3.IPPoolSpec{
			CIDR: "fd00::/48", VXLANMode: v3.EncapCrossSubnet, Disabled: true, NodeSelector: "rack == 'a'"}},
	}
}

func render(t *testing.T, format string, results []Result, opts PrintOptions) string {
	t.Helper()
	f, err := ParseFormat(format)
	if err != nil {
		t.Fatalf("ParseFormat(%q): %v", format, err)
	}
	var buf bytes.Buffer
	if err := Print(&buf, f, results, opts); err != nil {
		t.Fatalf("Print(%q): %v", format, err)
	}
	return buf.String()
}

func TestTables(t *testing.T) {
	peers := []v3.Resource{
		&v3.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "tor"}, Spec: v3.BGPPeerSpec{PeerIP: "10.0.0.1", ASNumber: 65001}},
		&v3.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "rack-a"}, Spec: v3.BGPPeerSpec{PeerIP: "10.0.1.1", ASNumber: 65002, NodeSelector: "rack == 'a'"}},
		&v3.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "n1-peer"}, Spec: v3.BGPPeerSpec{PeerIP: "10.0.2.1", ASNumber: 4200000000, Node: "n1"}},
	}
	nodes := []v3.Resource{
		&v3.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: v3.NodeSpec{BGP: &v3.NodeBGPSpec{IPv4Address: "10.0.0.11/24"}}},
		&v3.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-two"}, Spec: v3.NodeSpec{BGP: &v3.NodeBGPSpec{ASNumber: asn(65010), IPv4Address: "10.0.0.12/24", IPv6Address: "fd00::12/64"}}},
		&v3.Node{ObjectMeta: metav1.ObjectMeta{Name: "n3"}},
	}
	weps := []v3.Resource{
		&v3.WorkloadEndpoint{ObjectMeta: metav1.ObjectMeta{Name: "n1-k8s-web-eth0", Namespace: "prod"}, Spec: v3.WorkloadEndpointSpec{
			Pod: "web", Node: "n1", IPNetworks: []string{"192.168.1.5/32", "fd00::5/128"}, InterfaceName: "cali0123456789a"}},
	}
	cases := []struct {
		name, format string
		results      []Result
		opts         PrintOptions
		want         string
	}{
		{"ippool ps", "ps", []Result{{Kind: "IPPool", List: true, Resources: pools()}}, PrintOptions{},
			"NAME                  CIDR             SELECTOR      \n" +
				"default-ipv4-ippool   192.168.0.0/16   all()         \n" +
				"p2                    fd00::/48        rack == 'a'   \n\n"},
		{"ippool wide", "wide", []Result{{Kind: "IPPool", List: true, Resources: pools()}}, PrintOptions{},
			"NAME                  CIDR             NAT     IPIPMODE   VXLANMODE     DISABLED   DISABLEBGPEXPORT   SELECTOR      ASSIGNMENTMODE   \n" +
				"default-ipv4-ippool   192.168.0.0/16   true    Always     Never         false      false              all()         Automatic        \n" +
				"p2                    fd00::/48        false   Never      CrossSubnet   true       false              rack == 'a'   Automatic        \n\n"},
		{"ippool custom", "custom-columns=name,CIDR,ipipmode", []Result{{Kind: "IPPool", List: true, Resources: pools()}}, PrintOptions{},
			"NAME                  CIDR             IPIPMODE   \n" +
				"default-ipv4-ippool   192.168.0.0/16   Always     \n" +
				"p2                    fd00::/48        Never      \n\n"},
		{"bgppeer ps", "ps", []Result{{Kind: "BGPPeer", List: true, Resources: peers}}, PrintOptions{},
			"NAME      PEERIP     NODE          ASN          \n" +
				"tor       10.0.0.1   (global)      65001        \n" +
				"rack-a    10.0.1.1   rack == 'a'   65002        \n" +
				"n1-peer   10.0.2.1   n1            4200000000   \n\n"},
		{"bgppeer custom", "custom-columns=NAME,NODE", []Result{{Kind: "BGPPeer", List: true, Resources: peers[:1]}}, PrintOptions{},
			"NAME   NODE       \n" +
				"tor    (global)   \n\n"},
		{"node ps", "ps", []Result{{Kind: "Node", List: true, Resources: nodes}}, PrintOptions{},
			"NAME       \n" +
				"n1         \n" +
				"node-two   \n" +
				"n3         \n\n"},
		{"node wide inherits asn", "wide", []Result{{Kind: "Node", List: true, Resources: nodes}}, PrintOptions{Lookup: &fixedLookup{asn: "64512"}},
			"NAME       ASN       IPV4           IPV6          \n" +
				"n1         (64512)   10.0.0.11/24                 \n" +
				"node-two   65010     10.0.0.12/24   fd00::12/64   \n" +
				"n3                                                \n\n"},
		{"node custom", "custom-columns=NAME,ASN", []Result{{Kind: "Node", List: true, Resources: nodes[:2]}}, PrintOptions{Lookup: &fixedLookup{asn: "65000"}},
			"NAME       ASN       \n" +
				"n1         (65000)   \n" +
				"node-two   65010     \n\n"},
		{"wep ps", "ps", []Result{{Kind: "WorkloadEndpoint", List: true, Resources: weps}}, PrintOptions{},
			"WORKLOAD   NODE   NETWORKS                     INTERFACE         \n" +
				"web        n1     192.168.1.5/32,fd00::5/128   cali0123456789a   \n\n"},
		{"wep all namespaces", "ps", []Result{{Kind: "WorkloadEndpoint", List: true, Resources: weps}}, PrintOptions{PrintNamespace: true},
			"NAMESPACE   WORKLOAD   NODE   NETWORKS                     INTERFACE         \n" +
				"prod        web        n1     192.168.1.5/32,fd00::5/128   cali0123456789a   \n\n"},
		{"namespace column only for namespaced kinds", "ps", []Result{{Kind: "IPPool", List: true, Resources: pools()[:1]}}, PrintOptions{PrintNamespace: true},
			"NAME                  CIDR             SELECTOR   \n" +
				"default-ipv4-ippool   192.168.0.0/16   all()      \n\n"},
		{"empty listing prints headings", "ps", []Result{{Kind: "BGPConfiguration", List: true}}, PrintOptions{},
			"NAME   LOGSEVERITY   MESHENABLED   ASNUMBER   \n\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := render(t, tc.format, tc.results, tc.opts)
			if got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", strings.ReplaceAll(got, " ", "·"), strings.ReplaceAll(tc.want, " ", "·"))
			}
		})
	}
}

func TestLookupAskedOnce(t *testing.T) {
	lk := &fixedLookup{asn: "64512"}
	nodes := []v3.Resource{
		&v3.Node{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: v3.NodeSpec{BGP: &v3.NodeBGPSpec{}}},
		&v3.Node{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: v3.NodeSpec{BGP: &v3.NodeBGPSpec{}}},
	}
	render(t, "wide", []Result{{Kind: "Node", List: true, Resources: nodes}}, PrintOptions{Lookup: lk})
	if lk.calls != 1 {
		t.Errorf("DefaultASNumber called %d times, want 1", lk.calls)
	}
	lk.calls = 0
	render(t, "ps", []Result{{Kind: "Node", List: true, Resources: nodes}}, PrintOptions{Lookup: lk})
	if lk.calls != 0 {
		t.Errorf("narrow output asked for the AS number %d times, want 0", lk.calls)
	}
}

func TestUnknownColumn(t *testing.T) {
	f, _ := ParseFormat("custom-columns=NAME,BOGUS")
	err := Print(&bytes.Buffer{}, f, []Result{{Kind: "IPPool", List: true, Resources: pools()}}, PrintOptions{})
	if err == nil || !strings.Contains(err.Error(), "unknown heading BOGUS") || !strings.Contains(err.Error(), "CIDR") {
		t.Fatalf("err = %v, want unknown heading naming the valid ones", err)
	}
}

func TestParseFormatErrors(t *testing.T) {
	for in, want := range map[string]string{
		"xml":               "unrecognized output format 'xml'",
		"custom-columns=":   "at least one column",
		"go-template=":      "specify a template",
		"go-template-file=": "specify a template file",
	} {
		if _, err := ParseFormat(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseFormat(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestJSONAndYAMLShapes(t *testing.T) {
	// One resource asked for by name prints alone.
	one := render(t, "json", []Result{{Kind: "IPPool", Resources: pools()[:1]}}, PrintOptions{})
	if !strings.Contains(one, `"kind": "IPPool"`) || strings.Contains(one, "items") {
		t.Errorf("single resource JSON:\n%s", one)
	}
	// A listing is a <Kind>List even with one item, like Calico.
	listed := render(t, "yaml", []Result{{Kind: "IPPool", List: true, Revision: "42", Resources: pools()[:1]}}, PrintOptions{})
	for _, want := range []string{"kind: IPPoolList", "items:", "resourceVersion: \"42\"", "cidr: 192.168.0.0/16"} {
		if !strings.Contains(listed, want) {
			t.Errorf("listing YAML lacks %q:\n%s", want, listed)
		}
	}
	// And it decodes back into the same resources.
	docs, err := v3.DecodeAll([]byte(listed))
	if err != nil || len(docs) != 1 || docs[0].Resource.GetName() != "default-ipv4-ippool" {
		t.Fatalf("decode listing back: %v, %d docs", err, len(docs))
	}
	empty := render(t, "yaml", []Result{{Kind: "BGPPeer", List: true}}, PrintOptions{})
	if !strings.Contains(empty, "kind: BGPPeerList") || !strings.Contains(empty, "items: []") {
		t.Errorf("empty listing YAML:\n%s", empty)
	}
	two := render(t, "yaml", []Result{{Kind: "IPPool", Resources: pools()}}, PrintOptions{})
	if docs, err := v3.DecodeAll([]byte(two)); err != nil || len(docs) != 2 || !strings.Contains(two, "kind: IPPoolList") {
		t.Errorf("two named resources: err %v docs %d\n%s", err, len(docs), two)
	}
}

func TestGoTemplate(t *testing.T) {
	got := render(t, `go-template={{range .}}{{range .Items}}{{.ObjectMeta.Name}}={{.Spec.CIDR}};{{end}}{{end}}`,
		[]Result{{Kind: "IPPool", List: true, Resources: pools()}}, PrintOptions{})
	if got != "default-ipv4-ippool=192.168.0.0/16;p2=fd00::/48;" {
		t.Errorf("listing template: %q", got)
	}
	w := &v3.WorkloadEndpoint{ObjectMeta: metav1.ObjectMeta{Name: "w", Labels: map[string]string{"b": "2", "a": "1"}},
		Spec: v3.WorkloadEndpointSpec{IPNetworks: []string{"10.0.0.1/32", "10.0.0.2/32"}}}
	got = render(t, `go-template={{range .}}{{join .Spec.IPNetworks "|"}} {{join .ObjectMeta.Labels ","}} {{config "asnumber"}}{{end}}`,
		[]Result{{Kind: "WorkloadEndpoint", Resources: []v3.Resource{w}}}, PrintOptions{Lookup: &fixedLookup{asn: "65123"}})
	if got != "10.0.0.1/32|10.0.0.2/32 a=1,b=2 65123" {
		t.Errorf("named template: %q", got)
	}
	f, _ := ParseFormat("go-template={{.Nope")
	if err := Print(&bytes.Buffer{}, f, nil, PrintOptions{}); err == nil || !strings.Contains(err.Error(), "parse go-template") {
		t.Errorf("bad template: %v", err)
	}
}

func TestTruncatedNets(t *testing.T) {
	var nets []string
	for i := 0; i < 20; i++ {
		nets = append(nets, "10.0.0.0/24")
	}
	s := &v3.GlobalNetworkSet{ObjectMeta: metav1.ObjectMeta{Name: "big"}, Spec: v3.GlobalNetworkSetSpec{Nets: nets}}
	got := render(t, "custom-columns=NETS", []Result{{Kind: "GlobalNetworkSet", Resources: []v3.Resource{s}}}, PrintOptions{})
	line := strings.TrimSpace(strings.Split(got, "\n")[1])
	if len(line) != 80 || !strings.HasSuffix(line, "...") {
		t.Errorf("NETS cell %q (len %d), want 80 chars ending in ...", line, len(line))
	}
}
