package startup

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
	"github.com/tabbynet/tabby/node/autodetect"
	"github.com/tabbynet/tabby/node/config"
)

func runOn(t *testing.T, host autodetect.System, kv ...string) (map[string]string, error) {
	t.Helper()
	ds := etcdtest.NewStore(t)
	m := map[string]string{"NODENAME": "node-a", "TABBY_NODENAME_FILE": "none", "IP": "10.0.0.5/24"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	cfg, err := config.FromEnv(func(k string) string { return m[k] }, os.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Run(ctx, ds, cfg, host, etcdtest.Logger(t)); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for name, p := range pools(t, ds) {
		out[name] = p.Spec.CIDR
	}
	return out, nil
}

// A host whose LAN sits inside 192.168.0.0/16 would black-hole its own
// subnet behind the default pool's blackhole block routes, so the default
// moves to the first free 172.16-31 range, as Calico does.
func TestDefaultPoolAvoidsHostRanges(t *testing.T) {
	lan := func(prefixes ...string) fakeHost {
		h := fakeHost{{Name: "lo", Index: 1, MTU: 65536, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}}}
		iface := autodetect.Interface{Name: "eth0", Index: 2, MTU: 1500}
		for _, p := range prefixes {
			iface.Addrs = append(iface.Addrs, netip.MustParsePrefix(p))
		}
		return append(h, iface)
	}
	for _, tc := range []struct {
		name string
		host fakeHost
		env  []string
		want string
	}{
		{"no overlap keeps 192.168.0.0/16", lan("10.0.0.5/24"), nil, "192.168.0.0/16"},
		{"LAN inside the default", lan("10.0.0.5/24", "192.168.1.10/24"), nil, "172.16.0.0/16"},
		{"first 172 range taken too", lan("10.0.0.5/24", "192.168.1.10/24", "172.16.4.1/24"), nil, "172.17.0.0/16"},
		{"explicit CIDR is kept even if it overlaps", lan("10.0.0.5/24", "192.168.1.10/24"), []string{"CALICO_IPV4POOL_CIDR", "192.168.0.0/16"}, "192.168.0.0/16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := runOn(t, tc.host, tc.env...)
			if err != nil {
				t.Fatal(err)
			}
			if got["default-ipv4-ippool"] != tc.want {
				t.Fatalf("default pool %v, want %s", got, tc.want)
			}
		})
	}
}

func TestDefaultPoolIsValidated(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"CALICO_IPV4POOL_CIDR", "169.254.0.0/16"}, "CALICO_IPV4POOL_CIDR=169.254.0.0/16: the default pool would be invalid: spec.cidr:"},
		{[]string{"CALICO_IPV6POOL_CIDR", "fe80::/64"}, "CALICO_IPV6POOL_CIDR=fe80::/64: the default pool would be invalid: spec.cidr:"},
	} {
		t.Run(tc.env[1], func(t *testing.T) {
			got, err := runOn(t, testHost, tc.env...)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got pools %v, error %v\nwant an error starting %q", got, err, tc.want)
			}
		})
	}
}

// Tabby keeps IPAM records under /calico/resources/v3/; on an etcd that still
// holds Calico's own /calico/ipam/v2/ records it must refuse to start rather
// than hand out addresses Calico's pods hold.
func TestRefusesCalicoIPAMData(t *testing.T) {
	ds := etcdtest.NewStore(t)
	ctx := context.Background()
	if _, err := ds.Client().Put(ctx, "/calico/ipam/v2/assignment/ipv4/block/10.244.0.0-26", `{"cidr":"10.244.0.0/26"}`); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{"NODENAME": "node-a", "TABBY_NODENAME_FILE": "none", "IP": "10.0.0.5/24"}
	cfg, err := config.FromEnv(func(k string) string { return m[k] }, os.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(ctx, ds, cfg, testHost, etcdtest.Logger(t))
	if err == nil || !strings.Contains(err.Error(), "holds Calico's own IPAM records (/calico/ipam/v2/)") {
		t.Fatalf("got %v, want a refusal naming Calico's IPAM records", err)
	}
	if p := pools(t, ds); len(p) != 0 {
		t.Errorf("refused start created pools %v", p)
	}
}
