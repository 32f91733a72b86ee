package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// FRR binaries as Debian's frr package installs them.
const (
	frrDaemonDir = "/usr/lib/frr"
	frrVtysh     = "vtysh"
)

// FRRNeighbor is one BGP neighbor of an FRR router.
type FRRNeighbor struct {
	Addr netip.Addr
	AS   uint32
	// Password is the TCP-MD5 key; empty means none.
	Password string
	// ASOverride replaces the neighbor's AS with ours in what we send it:
	// the AS-per-rack model, where every node of a rack shares one AS and
	// would otherwise drop its rack mates' routes as a loop. Such a
	// neighbor is also made "solo" (its own update group, see bgpdConf).
	ASOverride bool
	// DefaultOriginate sends the neighbor a default route.
	DefaultOriginate bool
	// RRClient makes this router a route reflector for the neighbor.
	RRClient bool
}

// FRRConfig is what bgpd.conf is rendered from.
type FRRConfig struct {
	Hostname string
	RouterID netip.Addr
	AS       uint32
	// Networks are originated (each needs a matching route in the
	// router's kernel, or "no bgp network import-check", which is set).
	Networks  []netip.Prefix
	Neighbors []FRRNeighbor
	// RRClusterID, when set, is the route reflector cluster ID.
	RRClusterID string
}

// "frr defaults datacenter" gives short timers and no
// ebgp-requires-policy; both are also spelled out so a change of FRR's
// profiles cannot silently make eBGP exchange nothing.
//
// A neighbor with as-override is "solo". FRR builds one UPDATE per update
// group and applies as-override with the AS of the group's first peer;
// its update groups (FRR 8.4, Debian 12's) do not split peers by remote
// AS, so with one router
// standing in for every rack's ToR, nodes of several rack ASes share a
// group. A node of another rack than the first peer's then got its rack
// mates' blocks with its own AS still in the path, and its speaker
// dropped them as AS loops, as BIRD would: the lab's "rack mate's block
// sometimes never reaches the kernel", depending on which node connected
// first. Solo gives each such neighbor its own group (a real ToR serves
// one rack, one AS), and keeps a node's own block from being sent back to
// it, as a one-peer group never does.
var bgpdConf = template.Must(template.New("bgpd").Parse(`frr defaults datacenter
hostname {{.Hostname}}
log file {{.Dir}}/bgpd.log informational
!
router bgp {{.AS}}
 bgp router-id {{.RouterID}}
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp graceful-restart
{{- if .RRClusterID}}
 bgp cluster-id {{.RRClusterID}}
{{- end}}
{{- range .Neighbors}}
 neighbor {{.Addr}} remote-as {{.AS}}
 neighbor {{.Addr}} timers connect 2
{{- if .ASOverride}}
 neighbor {{.Addr}} solo
{{- end}}
{{- if .Password}}
 neighbor {{.Addr}} password {{.Password}}
{{- end}}
{{- end}}
 address-family ipv4 unicast
{{- range .Networks}}
  network {{.}}
{{- end}}
{{- range .Neighbors}}
  neighbor {{.Addr}} activate
{{- if .ASOverride}}
  neighbor {{.Addr}} as-override
{{- end}}
{{- if .DefaultOriginate}}
  neighbor {{.Addr}} default-originate
{{- end}}
{{- if .RRClient}}
  neighbor {{.Addr}} route-reflector-client
{{- end}}
{{- end}}
 exit-address-family
!
`))

// Render is the bgpd.conf text; dir is where its log goes.
func (c FRRConfig) Render(dir string) (string, error) {
	var b bytes.Buffer
	err := bgpdConf.Execute(&b, struct {
		FRRConfig
		Dir string
	}{c, dir})
	return b.String(), err
}

// FRR is zebra + bgpd running in one namespace, with their own zserv
// socket, vty sockets and pid files in a directory user frr owns (they drop
// to that user).
type FRR struct {
	Name  string
	NS    *NetNS
	Dir   string
	Zebra *Proc
	Bgpd  *Proc
}

func frrIDs() (uid, gid int, err error) {
	u, err := user.Lookup("frr")
	if err != nil {
		return 0, 0, fmt.Errorf("user frr (from the Debian package frr) is missing: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("user frr has a non-numeric uid/gid %s/%s", u.Uid, u.Gid)
	}
	return uid, gid, nil
}

// startFRR starts zebra and bgpd in n with cfg and waits until bgpd
// answers vtysh.
func (e *env) startFRR(ctx context.Context, n *NetNS, name string, cfg FRRConfig) (*FRR, error) {
	for _, b := range []string{filepath.Join(frrDaemonDir, "zebra"), filepath.Join(frrDaemonDir, "bgpd")} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("FRR is not installed (%s missing): run scripts/install-deps.sh", b)
		}
	}
	if _, err := exec.LookPath(frrVtysh); err != nil {
		return nil, fmt.Errorf("FRR's vtysh is not installed: run scripts/install-deps.sh: %w", err)
	}
	uid, gid, err := frrIDs()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(e.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, fmt.Errorf("give %s to user frr: %w", dir, err)
	}
	if cfg.Hostname == "" {
		cfg.Hostname = name
	}
	conf, err := cfg.Render(dir)
	if err != nil {
		return nil, fmt.Errorf("render bgpd.conf of %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bgpd.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "zebra.conf"), []byte("hostname "+cfg.Hostname+"\n"), 0o644); err != nil {
		return nil, err
	}
	f := &FRR{Name: name, NS: n, Dir: dir}
	common := []string{"-z", filepath.Join(dir, "zserv.api"), "--vty_socket", dir, "-P", "0"}
	zebra := append([]string{filepath.Join(frrDaemonDir, "zebra"), "-i", filepath.Join(dir, "zebra.pid"), "-f", filepath.Join(dir, "zebra.conf")}, common...)
	if f.Zebra, err = e.startProc(n, "zebra "+name, zebra, nil, filepath.Join(dir, "zebra.out"), 5*time.Second); err != nil {
		return nil, err
	}
	// bgpd connects to zebra's zserv socket: wait for it.
	if err := waitFor(ctx, 10*time.Second, func() error {
		if ok, exitErr := f.Zebra.Exited(); ok {
			return permanent(fmt.Errorf("zebra of %s exited: %v\n%s", name, exitErr, f.Zebra.LogTail(20)))
		}
		_, err := os.Stat(filepath.Join(dir, "zserv.api"))
		return err
	}); err != nil {
		return nil, fmt.Errorf("zebra of %s did not come up: %w", name, err)
	}
	bgpd := append([]string{filepath.Join(frrDaemonDir, "bgpd"), "-i", filepath.Join(dir, "bgpd.pid"), "-f", filepath.Join(dir, "bgpd.conf")}, common...)
	if f.Bgpd, err = e.startProc(n, "bgpd "+name, bgpd, nil, filepath.Join(dir, "bgpd.out"), 5*time.Second); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, 15*time.Second, func() error {
		if ok, exitErr := f.Bgpd.Exited(); ok {
			return permanent(fmt.Errorf("bgpd of %s exited: %v\n%s", name, exitErr, f.Bgpd.LogTail(20)))
		}
		_, err := f.Vtysh(ctx, "show bgp summary json")
		return err
	}); err != nil {
		return nil, fmt.Errorf("bgpd of %s did not come up: %w", name, err)
	}
	return f, nil
}

// Vtysh runs vtysh commands against this instance and returns the output.
func (f *FRR) Vtysh(ctx context.Context, cmds ...string) (string, error) {
	args := []string{"--vty_socket", f.Dir}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.CommandContext(ctx, frrVtysh, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vtysh %s (FRR %s): %w: %s", strings.Join(cmds, "; "), f.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// FRRPeerState is one neighbor in `show bgp summary json`.
type FRRPeerState struct {
	State       string `json:"state"`
	PfxRcd      int    `json:"pfxRcd"`
	PfxSnt      int    `json:"pfxSnt"`
	RemoteAS    uint32 `json:"remoteAs"`
	Connections int    `json:"connectionsEstablished"`
}

// Peers is the IPv4 unicast neighbor table by address.
func (f *FRR) Peers(ctx context.Context) (map[netip.Addr]FRRPeerState, error) {
	out, err := f.Vtysh(ctx, "show bgp ipv4 unicast summary json")
	if err != nil {
		return nil, err
	}
	var s struct {
		Peers map[string]FRRPeerState `json:"peers"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return nil, fmt.Errorf("parse FRR %s summary: %w: %s", f.Name, err, out)
	}
	m := make(map[netip.Addr]FRRPeerState, len(s.Peers))
	for k, v := range s.Peers {
		if a, err := netip.ParseAddr(k); err == nil {
			m[a] = v
		}
	}
	return m, nil
}
