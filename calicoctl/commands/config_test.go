package commands_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tabbynet/tabby/calicoctl/commands"
)

func apiConfig(endpoints string) string {
	return "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\nspec:\n  datastoreType: etcdv3\n  etcdEndpoints: " + endpoints + "\n"
}

func TestConfigSources(t *testing.T) {
	h := newHarness(t)
	h.ok("create", "-f", h.file("pool.yaml", pool("cfg-pool", "  cidr: 10.1.0.0/16\n")))
	reachable := strings.Join(h.endpoints, ",")
	closed := fmt.Sprintf("http://127.0.0.1:%d", closedPort(t))

	t.Run("environment", func(t *testing.T) {
		h.t = t
		if r := h.ok("get", "ippools"); !strings.Contains(r.stdout, "cfg-pool") {
			t.Errorf("get with ETCD_ENDPOINTS:\n%s", r)
		}
	})
	t.Run("--config wins over the environment", func(t *testing.T) {
		h.t = t
		cfg := h.file("calicoctl.cfg", apiConfig(reachable))
		saved := h.env["ETCD_ENDPOINTS"]
		h.env["ETCD_ENDPOINTS"] = closed
		defer func() { h.env["ETCD_ENDPOINTS"] = saved }()
		if r := h.ok("get", "ippools", "--config", cfg); !strings.Contains(r.stdout, "cfg-pool") {
			t.Errorf("get --config:\n%s", r)
		}
		if r := h.ok("-c", cfg, "get", "ippool", "cfg-pool", "-o", "yaml"); !strings.Contains(r.stdout, "cidr: 10.1.0.0/16") {
			t.Errorf("-c before the command:\n%s", r)
		}
	})
	t.Run("the default file is used when it exists", func(t *testing.T) {
		h.t = t
		var out, errOut bytes.Buffer
		cli := commands.New(&out, &errOut, func(k string) string { return map[string]string{"ETCD_ENDPOINTS": closed}[k] })
		cli.DefaultConfigPath = h.file("etc/calicoctl.cfg", apiConfig(reachable))
		cli.DatastoreTimeout = 3 * time.Second
		if err := cli.Execute([]string{"get", "ippools"}); err != nil || !strings.Contains(out.String(), "cfg-pool") {
			t.Errorf("get with the default file: %v\n%s%s", err, out.String(), errOut.String())
		}
	})
	t.Run("a bad config file names the field", func(t *testing.T) {
		h.t = t
		cfg := h.file("bad.cfg", strings.Replace(apiConfig(reachable), "etcdEndpoints", "etcdEndpoint", 1))
		r := h.run("", "get", "ippools", "--config", cfg)
		if r.err == nil || !strings.Contains(r.stderr, "etcdEndpoint") || !strings.Contains(r.stderr, "bad.cfg") {
			t.Errorf("bad config file:\n%s", r)
		}
		cfg = h.file("badurl.cfg", apiConfig("127.0.0.1:2379"))
		r = h.run("", "get", "ippools", "--config", cfg)
		if r.err == nil || !strings.Contains(r.stderr, "spec.etcdEndpoints") {
			t.Errorf("bad endpoint in config file:\n%s", r)
		}
	})
	t.Run("a missing --config file is an error", func(t *testing.T) {
		h.t = t
		r := h.run("", "get", "ippools", "--config", h.dir+"/nope.cfg")
		if r.err == nil || !strings.Contains(r.stderr, "error reading config file") {
			t.Errorf("missing config file:\n%s", r)
		}
	})
	t.Run("a bad environment names the variable", func(t *testing.T) {
		h.t = t
		saved := h.env["ETCD_ENDPOINTS"]
		h.env["ETCD_ENDPOINTS"] = "etcd:2379"
		defer func() { h.env["ETCD_ENDPOINTS"] = saved }()
		r := h.run("", "get", "ippools")
		if r.err == nil || !strings.Contains(r.stderr, "ETCD_ENDPOINTS") {
			t.Errorf("bad ETCD_ENDPOINTS:\n%s", r)
		}
	})
	t.Run("bad log level", func(t *testing.T) {
		h.t = t
		r := h.run("", "get", "ippools", "--log-level", "loud")
		if r.err == nil || !strings.Contains(r.stderr, "unknown log level: loud") {
			t.Errorf("bad log level:\n%s", r)
		}
	})
}
