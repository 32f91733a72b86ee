package backend_test

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/backend"
	"github.com/tabbynet/tabby/datastore/etcd/etcdtest"
)

func TestOpensEtcd(t *testing.T) {
	e := etcdtest.Start(t)
	cfg, err := datastore.ConfigFromEnv(func(k string) string {
		if k == "ETCD_ENDPOINTS" {
			return strings.Join(e.Endpoints(), ",")
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := backend.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	ctx := context.Background()
	if _, err := ds.Create(ctx, &v3.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v3.IPPoolSpec{CIDR: "10.0.0.0/24"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ds.Get(ctx, v3.Key{Kind: "IPPool", Name: "p"}); err != nil {
		t.Fatal(err)
	}
}

func TestRefusals(t *testing.T) {
	for _, c := range []struct {
		cfg  datastore.Config
		want string
	}{
		{datastore.Config{Type: "kubernetes"}, `datastore type "kubernetes" is not supported yet; use DATASTORE_TYPE=etcdv3`},
		{datastore.Config{Type: "consul"}, `"consul"`},
		{datastore.Config{}, `""`},
		{datastore.Config{Type: "etcdv3"}, "no etcd endpoints"},
	} {
		ds, err := backend.New(c.cfg)
		if err == nil || ds != nil {
			t.Errorf("%+v: got %v, %v", c.cfg, ds, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %q does not contain %q", c.cfg, err, c.want)
		}
	}
}
