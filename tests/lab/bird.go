package lab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// BIRDPeer is one BGP protocol of a BIRD instance.
type BIRDPeer struct {
	// Name is the protocol name (letters, digits, underscores; not a BIRD
	// keyword such as "ebgp" or "originate": Calico-style names like
	// Mesh_10_99_0_10 are safe).
	Name    string
	Local   netip.Addr
	LocalAS uint32
	Addr    netip.Addr
	AS      uint32
	// Password is the TCP-MD5 key; empty means none.
	Password string
	// RRClient makes BIRD a route reflector for this peer.
	RRClient    bool
	RRClusterID string
	// Export says what is sent: "static" (every originated prefix),
	// "all" or "none"; ExportProtocol, when set instead, sends only what
	// one static protocol originates.
	Export         string
	ExportProtocol string
	// Disabled starts the protocol down (birdc enable brings it up).
	Disabled bool
}

// BIRDConfig is what bird.conf is rendered from.
type BIRDConfig struct {
	RouterID netip.Addr
	// Kernel exports the best routes into the namespace's kernel (proto
	// bird), as a node running BIRD does.
	Kernel bool
	// Static are prefixes originated (as blackhole routes, never put in
	// the kernel) by the static protocol "lab_static"; StaticDisabled
	// starts it down (`birdc enable lab_static` then announces them all at
	// once, disable withdraws them).
	Static         []netip.Prefix
	StaticDisabled bool
	// MoreStatics are further static protocols, for peers that must be
	// sent different prefixes (BIRDPeer.ExportProtocol).
	MoreStatics []BIRDStatic
	Peers       []BIRDPeer
}

// BIRDStatic is one static protocol of originated prefixes.
type BIRDStatic struct {
	Name     string
	Prefixes []netip.Prefix
	Disabled bool
}

// statics are every static protocol of the configuration.
func (c BIRDConfig) statics() []BIRDStatic {
	var out []BIRDStatic
	if len(c.Static) > 0 {
		out = append(out, BIRDStatic{Name: LabStatic, Prefixes: c.Static, Disabled: c.StaticDisabled})
	}
	return append(out, c.MoreStatics...)
}

// LabStatic is the name of BIRDConfig.Static's protocol.
const LabStatic = "lab_static"

// BIRD 2 rejects eBGP sessions without explicit filters, so every channel
// has both. The short connect/error timers keep a lab from waiting for
// BIRD's 120 s defaults after a peer restarts.
var birdConf = template.Must(template.New("bird").Parse(`router id {{.RouterID}};
log "{{.Dir}}/bird.log" { warning, error, fatal, bug, info };
protocol device { scan time 10; }
{{- if .Kernel}}
protocol kernel {
  # Originated prefixes are for BGP only: in the kernel they would be
  # blackholes shadowing whatever really lives there.
  ipv4 { import none; export where source != RTS_STATIC; };
  merge paths on;
}
{{- end}}
{{- range .Statics}}
protocol static {{.Name}} {
{{- if .Disabled}}
  disabled;
{{- end}}
  ipv4;
{{- range .Prefixes}}
  route {{.}} blackhole;
{{- end}}
}
{{- end}}
{{- range .Peers}}
protocol bgp {{.Name}} {
{{- if .Disabled}}
  disabled;
{{- end}}
  local {{.Local}} as {{.LocalAS}};
  neighbor {{.Addr}} as {{.AS}};
  # Every lab peer is on the same segment: next hops resolve directly
  # (iBGP's default is multihop with recursive next hops, which need an
  # IGP route the lab does not run).
  direct;
  connect delay time 1;
  connect retry time 2;
  error wait time 1, 5;
  graceful restart on;
{{- if .Password}}
  password "{{.Password}}";
{{- end}}
{{- if .RRClient}}
  rr client;
{{- if .RRClusterID}}
  rr cluster id {{.RRClusterID}};
{{- end}}
{{- end}}
  ipv4 {
    import all;
{{- if eq .Export "static"}}
    export where source = RTS_STATIC;
{{- else if .ExportProtocol}}
    export where proto = "{{.ExportProtocol}}";
{{- else if eq .Export "all"}}
    export all;
{{- else}}
    export none;
{{- end}}
  };
}
{{- end}}
`))

// Render is the bird.conf text; dir is where BIRD's log goes.
func (c BIRDConfig) Render(dir string) (string, error) {
	var b bytes.Buffer
	err := birdConf.Execute(&b, struct {
		BIRDConfig
		Dir     string
		Statics []BIRDStatic
	}{c, dir, c.statics()})
	return b.String(), err
}

// BIRD is one bird daemon in a namespace, with its own control socket.
type BIRD struct {
	Name   string
	NS     *NetNS
	Dir    string
	Socket string
	Proc   *Proc

	routerID netip.Addr
}

// startBIRD writes cfg and runs `bird -f` in n, waiting until birdc
// answers. BIRD needs -s (the default socket path is shared) and -P.
func (e *env) startBIRD(ctx context.Context, n *NetNS, name string, cfg BIRDConfig) (*BIRD, error) {
	if _, err := exec.LookPath("bird"); err != nil {
		return nil, fmt.Errorf("BIRD is not installed (Debian package bird2): run scripts/install-deps.sh: %w", err)
	}
	dir := filepath.Join(e.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	b := &BIRD{Name: name, NS: n, Dir: dir, Socket: filepath.Join(dir, "bird.ctl"), routerID: cfg.RouterID}
	if err := b.writeConf(cfg); err != nil {
		return nil, err
	}
	argv := []string{"bird", "-f", "-c", filepath.Join(dir, "bird.conf"), "-s", b.Socket, "-P", filepath.Join(dir, "bird.pid")}
	p, err := e.startProc(n, "bird "+name, argv, nil, filepath.Join(dir, "bird.out"), 5*time.Second)
	if err != nil {
		return nil, err
	}
	b.Proc = p
	if err := waitFor(ctx, 60*time.Second, func() error {
		if ok, exitErr := p.Exited(); ok {
			return permanent(fmt.Errorf("bird %s exited: %v\n%s", name, exitErr, p.LogTail(20)))
		}
		_, err := b.Birdc(ctx, "show", "status")
		return err
	}); err != nil {
		return nil, fmt.Errorf("bird %s did not come up: %w", name, err)
	}
	return b, nil
}

func (b *BIRD) writeConf(cfg BIRDConfig) error {
	conf, err := cfg.Render(b.Dir)
	if err != nil {
		return fmt.Errorf("render bird.conf of %s: %w", b.Name, err)
	}
	return os.WriteFile(filepath.Join(b.Dir, "bird.conf"), []byte(conf), 0o644)
}

// Birdc runs one birdc command against this instance.
func (b *BIRD) Birdc(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"-s", b.Socket}, args...)
	out, err := exec.CommandContext(ctx, "birdc", full...).CombinedOutput()
	s := string(out)
	if err == nil && strings.Contains(s, "Unable to connect") {
		err = fmt.Errorf("no daemon at %s", b.Socket)
	}
	if err != nil {
		return s, fmt.Errorf("birdc %s (BIRD %s): %w: %s", strings.Join(args, " "), b.Name, err, strings.TrimSpace(s))
	}
	return s, nil
}

// Reconfigure replaces the configuration of the running daemon (keeping
// its router ID when cfg has none).
func (b *BIRD) Reconfigure(ctx context.Context, cfg BIRDConfig) error {
	if !cfg.RouterID.IsValid() {
		cfg.RouterID = b.routerID
	}
	if err := b.writeConf(cfg); err != nil {
		return err
	}
	out, err := b.Birdc(ctx, "configure")
	if err == nil && !strings.Contains(out, "Reconfigur") {
		err = fmt.Errorf("birdc configure (BIRD %s): %s", b.Name, strings.TrimSpace(out))
	}
	return err
}

// BIRDProtocol is one line of `birdc show protocols`.
type BIRDProtocol struct {
	Name, Proto, State, Info string
}

// Established reports whether a BGP protocol's session is up.
func (p BIRDProtocol) Established() bool { return strings.HasPrefix(p.Info, "Established") }

// Protocols parses `show protocols`, by name.
func (b *BIRD) Protocols(ctx context.Context) (map[string]BIRDProtocol, error) {
	out, err := b.Birdc(ctx, "show", "protocols")
	if err != nil {
		return nil, err
	}
	return parseBIRDProtocols(out), nil
}

func parseBIRDProtocols(out string) map[string]BIRDProtocol {
	m := map[string]BIRDProtocol{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// Name Proto Table State Since(date [time]) Info...
		if len(f) < 5 || f[0] == "Name" || f[0] == "BIRD" {
			continue
		}
		p := BIRDProtocol{Name: f[0], Proto: f[1], State: f[3]}
		rest := f[4:]
		// "Since" is one or two fields (a time, or a date and a time).
		for i := 0; i < 2 && len(rest) > 0 && isBIRDTime(rest[0]); i++ {
			rest = rest[1:]
		}
		p.Info = strings.Join(rest, " ")
		m[p.Name] = p
	}
	return m
}

// isBIRDTime matches the "Since" column: "18:32:56.943" or "2026-11-22".
func isBIRDTime(s string) bool {
	if len(s) < 8 || s[0] < '0' || s[0] > '9' {
		return false
	}
	return (s[2] == ':' && s[5] == ':') || (len(s) >= 10 && s[4] == '-' && s[7] == '-')
}
