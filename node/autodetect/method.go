package autodetect

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Kind is one of Calico's autodetection methods.
type Kind string

const (
	FirstFound           Kind = "first-found"
	CanReach             Kind = "can-reach"
	InterfaceRegex       Kind = "interface"
	SkipInterface        Kind = "skip-interface"
	CIDR                 Kind = "cidr"
	KubernetesInternalIP Kind = "kubernetes-internal-ip"
)

// ExcludedInterfaces are the name patterns that first-found and
// skip-interface never pick: container bridges, veths, tunnels and Calico's
// own devices. It is Calico's list plus ^br-.* (Docker user networks) and
// ^nodelocaldns.*, so that a host moved from Calico picks the same address.
var ExcludedInterfaces = []string{
	`^docker.*`, `^cbr.*`, `^dummy.*`, `^podman.*`, `^virbr.*`, `^lxcbr.*`,
	`^veth.*`, `^lo`, `^cali.*`, `^tunl.*`, `^flannel.*`, `^kube-ipvs.*`,
	`^cni.*`, `^vxlan\.calico.*`, `^vxlan-v6\.calico.*`, `^wireguard\.cali.*`,
	`^wg-v6\.cali.*`, `^br-.*`, `^nodelocaldns.*`,
}

var excludedRegexp = regexp.MustCompile("(" + strings.Join(ExcludedInterfaces, ")|(") + ")")

// Method is a parsed IP_AUTODETECTION_METHOD / IP6_AUTODETECTION_METHOD.
type Method struct {
	Kind Kind
	// Patterns are the interface regexes of interface= and skip-interface=,
	// as written; matching is unanchored, as in Calico (write ^eth0$ to mean
	// exactly eth0).
	Patterns []string
	CIDRs    []netip.Prefix // cidr=
	Dest     string         // can-reach=: an address or a host name

	include *regexp.Regexp
	exclude *regexp.Regexp
}

// String is the method in its environment form.
func (m Method) String() string {
	switch m.Kind {
	case InterfaceRegex, SkipInterface:
		return string(m.Kind) + "=" + strings.Join(m.Patterns, ",")
	case CIDR:
		return string(m.Kind) + "=" + joinPrefixes(m.CIDRs)
	case CanReach:
		return string(m.Kind) + "=" + m.Dest
	}
	return string(m.Kind)
}

// ParseMethod parses a method as written in the environment. The empty
// string is first-found. Errors say what is wrong with the value, without
// the variable name (the caller adds it).
func ParseMethod(s string) (Method, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == string(FirstFound) {
		return Method{Kind: FirstFound, exclude: excludedRegexp}, nil
	}
	if s == string(KubernetesInternalIP) {
		return Method{}, errors.New("kubernetes-internal-ip needs the Kubernetes datastore, which this calico-node does not support yet: use interface=, cidr= or can-reach=")
	}
	name, arg, ok := strings.Cut(s, "=")
	if !ok {
		return Method{}, unknownMethod()
	}
	name = strings.TrimSpace(name)
	items := splitList(arg)
	switch Kind(name) {
	case InterfaceRegex, SkipInterface:
		if len(items) == 0 {
			return Method{}, fmt.Errorf("%s= needs at least one interface name regex, e.g. %s=^eth0$", name, name)
		}
		re, err := compileAny(items)
		if err != nil {
			return Method{}, err
		}
		m := Method{Kind: Kind(name), Patterns: items}
		if m.Kind == InterfaceRegex {
			m.include = re
		} else {
			// Skipping adds to Calico's exclusions, it does not replace them.
			m.exclude = regexp.MustCompile(excludedRegexp.String() + "|" + re.String())
		}
		return m, nil
	case CIDR:
		if len(items) == 0 {
			return Method{}, errors.New("cidr= needs at least one CIDR, e.g. cidr=10.0.0.0/8")
		}
		m := Method{Kind: CIDR}
		for _, item := range items {
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return Method{}, fmt.Errorf("%q is not a CIDR (write it like 10.0.0.0/8)", item)
			}
			m.CIDRs = append(m.CIDRs, p.Masked())
		}
		return m, nil
	case CanReach:
		dest := strings.TrimSpace(arg)
		if dest == "" {
			return Method{}, errors.New("can-reach= needs an address or host name, e.g. can-reach=8.8.8.8")
		}
		return Method{Kind: CanReach, Dest: dest}, nil
	}
	return Method{}, unknownMethod()
}

func unknownMethod() error {
	return errors.New("unknown autodetection method: use first-found, can-reach=DEST, interface=REGEX[,REGEX], skip-interface=REGEX[,REGEX] or cidr=CIDR[,CIDR]")
}

func joinPrefixes(ps []netip.Prefix) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// splitList splits Calico's comma-separated lists, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// compileAny builds one regex matching any of the patterns, checking each
// on its own first so that an error names the bad one.
func compileAny(patterns []string) (*regexp.Regexp, error) {
	for _, p := range patterns {
		if _, err := regexp.Compile(p); err != nil {
			return nil, fmt.Errorf("interface regex %q is not valid: %w", p, err)
		}
	}
	return regexp.MustCompile("(" + strings.Join(patterns, ")|(") + ")"), nil
}
