package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	v3 "github.com/tabbynet/tabby/api/v3"
)

func ippool(name, cidr string, mutate ...func(*v3.IPPool)) *v3.IPPool {
	p := &v3.IPPool{}
	p.Name = name
	p.Spec.CIDR = cidr
	for _, f := range mutate {
		f(p)
	}
	return p
}

func mustPool(t *testing.T, r *v3.IPPool) pool {
	t.Helper()
	p, err := parsePool(r)
	if err != nil {
		t.Fatalf("parse pool %s: %v", r.Name, err)
	}
	return p
}

func TestPoolDefaults(t *testing.T) {
	v4 := mustPool(t, ippool("a", "10.0.0.0/16"))
	if v4.blockBits != 26 || !v4.allows(v3.IPPoolAllowedUseWorkload) || !v4.allows(v3.IPPoolAllowedUseTunnel) || v4.manual || !v4.sel.Evaluate(nil) {
		t.Fatalf("v4 defaults wrong: %+v", v4)
	}
	v6 := mustPool(t, ippool("b", "fd00::/64"))
	if v6.blockBits != 122 {
		t.Fatalf("v6 default blockSize = %d, want 122", v6.blockBits)
	}
	for _, bad := range []*v3.IPPool{
		ippool("x", "10.0.0.0/33"),
		ippool("x", "10.0.0.0/24", func(p *v3.IPPool) { p.Spec.BlockSize = 19 }),
		ippool("x", "10.0.0.0/28", func(p *v3.IPPool) { p.Spec.BlockSize = 26 }),
		ippool("x", "fd00::/64", func(p *v3.IPPool) { p.Spec.BlockSize = 26 }),
		ippool("x", "10.0.0.0/16", func(p *v3.IPPool) { p.Spec.NodeSelector = "a ==" }),
	} {
		if _, err := parsePool(bad); err == nil {
			t.Errorf("pool %+v accepted", bad.Spec)
		}
	}
}

func TestNthBlockAndFirstUnclaimed(t *testing.T) {
	p := mustPool(t, ippool("a", "10.0.0.0/24"))
	if p.numBlocks() != 4 {
		t.Fatalf("numBlocks = %d", p.numBlocks())
	}
	want := []string{"10.0.0.0/26", "10.0.0.64/26", "10.0.0.128/26", "10.0.0.192/26"}
	for i, w := range want {
		if got := p.nthBlock(uint64(i)).String(); got != w {
			t.Errorf("nthBlock(%d) = %s, want %s", i, got, w)
		}
	}
	pre := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	if got, ok := firstUnclaimed(p, pre("10.0.0.0/26", "10.0.0.128/26", "192.168.0.0/26")); !ok || got.String() != "10.0.0.64/26" {
		t.Errorf("firstUnclaimed = %s %v", got, ok)
	}
	if _, ok := firstUnclaimed(p, pre(want...)); ok {
		t.Errorf("a full pool has no unclaimed block")
	}
	// A block of another size (from an older blockSize) rules out what it covers.
	if got, _ := firstUnclaimed(p, pre("10.0.0.0/25")); got.String() != "10.0.0.128/26" {
		t.Errorf("with a /25 in the way, firstUnclaimed = %s", got)
	}

	v6 := mustPool(t, ippool("b", "fd00:0:0:1::/64"))
	if got := v6.nthBlock(1).String(); got != "fd00:0:0:1::40/122" {
		t.Errorf("v6 nthBlock(1) = %s", got)
	}
	// A carry out of the low 64 bits.
	big := mustPool(t, ippool("c", "fd00::/56", func(p *v3.IPPool) { p.Spec.BlockSize = 122 }))
	if got := big.nthBlock(1 << 58).String(); got != "fd00:0:0:1::/122" {
		t.Errorf("v6 nthBlock(2^58) = %s", got)
	}
	if big.numBlocks() != ^uint64(0) {
		t.Errorf("numBlocks of a /56 with /122 blocks must saturate, got %d", big.numBlocks())
	}
}

func TestSelectPools(t *testing.T) {
	manual := v3.AssignmentModeManual
	all := []pool{
		mustPool(t, ippool("a-default", "10.0.0.0/16")),
		mustPool(t, ippool("b-rack1", "10.1.0.0/16", func(p *v3.IPPool) { p.Spec.NodeSelector = "rack == 'r1'" })),
		mustPool(t, ippool("c-off", "10.2.0.0/16", func(p *v3.IPPool) { p.Spec.Disabled = true })),
		mustPool(t, ippool("d-manual", "10.3.0.0/16", func(p *v3.IPPool) { p.Spec.AssignmentMode = &manual })),
		mustPool(t, ippool("e-tunnel", "10.4.0.0/16", func(p *v3.IPPool) {
			p.Spec.AllowedUses = []v3.IPPoolAllowedUse{v3.IPPoolAllowedUseTunnel}
		})),
		mustPool(t, ippool("f-v6", "fd00::/64")),
	}
	names := func(ps []pool) string {
		var s []string
		for _, p := range ps {
			s = append(s, p.name)
		}
		return strings.Join(s, ",")
	}
	wl := v3.IPPoolAllowedUseWorkload
	cases := []struct {
		ver     int
		req     []string
		labels  map[string]string
		use     v3.IPPoolAllowedUse
		want    string
		wantErr error
		errText string
	}{
		{4, nil, nil, wl, "a-default", nil, ""},
		{4, nil, map[string]string{"rack": "r1"}, wl, "a-default,b-rack1", nil, ""},
		{4, nil, nil, v3.IPPoolAllowedUseTunnel, "a-default,e-tunnel", nil, ""},
		{6, nil, nil, wl, "f-v6", nil, ""},
		{4, []string{"d-manual"}, nil, wl, "d-manual", nil, ""},
		{4, []string{"10.1.0.0/16"}, map[string]string{"rack": "r1"}, wl, "b-rack1", nil, ""},
		{4, []string{"nope"}, nil, wl, "", ErrPool, `"nope" does not exist`},
		{4, []string{"c-off"}, nil, wl, "", ErrPool, `"c-off" (10.2.0.0/16) is disabled`},
		{4, []string{"b-rack1"}, map[string]string{"rack": "r2"}, wl, "", ErrPool, `does not select node "n1"`},
		{4, []string{"f-v6"}, nil, wl, "", ErrPool, "not an IPv4 pool"},
		{4, []string{"e-tunnel"}, nil, wl, "", ErrPool, "does not allow Workload"},
		{6, nil, nil, v3.IPPoolAllowedUseTunnel, "f-v6", nil, ""},
	}
	for i, c := range cases {
		got, err := selectPools(all, c.ver, c.req, "n1", c.labels, c.use)
		if c.wantErr != nil {
			if !errors.Is(err, c.wantErr) || !strings.Contains(err.Error(), c.errText) {
				t.Errorf("case %d: err = %v, want %v containing %q", i, err, c.wantErr, c.errText)
			}
			continue
		}
		if err != nil || names(got) != c.want {
			t.Errorf("case %d: got %q, %v; want %q", i, names(got), err, c.want)
		}
	}
	if _, err := selectPools(all[2:4], 4, nil, "n1", nil, wl); !errors.Is(err, ErrNoPools) {
		t.Errorf("no automatic pool: err = %v", err)
	}
}
