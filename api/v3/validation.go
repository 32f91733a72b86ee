package v3

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"regexp"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8svalidation "k8s.io/apimachinery/pkg/util/validation"

	"github.com/tabbynet/tabby/api/selector"
)

// FieldError is one problem with one field.
type FieldError struct {
	Field  string // path from the resource root: "spec.cidr", "spec.ingress[0].source.nets[1]"
	Reason string // what is wrong, with the offending value quoted: `"10.0.0.0/33" is not a valid CIDR`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Reason }

// ValidationError lists every problem found in one resource.
type ValidationError struct {
	Kind      string
	Namespace string
	Name      string
	Errors    []FieldError
}

// Error reads `IPPool "p1": spec.cidr: "10.0.0.0/33" is not a valid CIDR`,
// with several problems joined by "; ".
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Error()
	}
	name := e.Name
	if e.Namespace != "" {
		name = e.Namespace + "/" + e.Name
	}
	return fmt.Sprintf("%s %q: %s", e.Kind, name, strings.Join(parts, "; "))
}

// Validate checks one resource the way Calico's client does before a create
// or replace, after SetDefaults (it also accepts resources without defaults,
// treating absent fields as their defaults). It returns nil or a
// *ValidationError listing every problem. Checks that need other resources
// (pool overlap: ValidatePoolOverlap) or the stored version (immutable
// fields) are the caller's.
func Validate(r Resource) error {
	if r == nil || reflect.ValueOf(r).IsNil() {
		return errors.New("validate: nil resource")
	}
	kind := KindOf(r)
	info, ok := kinds[kind]
	if !ok {
		return fmt.Errorf("validate: %T is not a registered resource kind", r)
	}
	v := &validator{}
	v.meta(r, info)
	switch x := r.(type) {
	case *IPPool:
		v.ipPool(&x.Spec)
	case *IPAMConfiguration:
		v.ipamConfig(x)
	case *BGPPeer:
		v.bgpPeer(&x.Spec)
	case *BGPConfiguration:
		v.bgpConfig(x)
	case *Node:
		v.node(x)
	case *FelixConfiguration:
		v.felixConfig(&x.Spec)
	case *WorkloadEndpoint:
		v.workloadEndpoint(x)
	case *HostEndpoint:
		v.hostEndpoint(&x.Spec)
	case *NetworkPolicy:
		v.policy(policyView{tier: x.Spec.Tier, ingress: x.Spec.Ingress, egress: x.Spec.Egress, types: x.Spec.Types,
			selector: x.Spec.Selector, saSelector: x.Spec.ServiceAccountSelector, hints: x.Spec.PerformanceHints})
	case *GlobalNetworkPolicy:
		v.globalPolicy(&x.Spec)
	case *NetworkSet:
		v.nets("spec.nets", x.Spec.Nets)
		v.noNamespaceLabel(x.Labels)
	case *GlobalNetworkSet:
		v.nets("spec.nets", x.Spec.Nets)
		v.noNamespaceLabel(x.Labels)
	case *IPAMBlock:
		v.ipamBlock(&x.Spec)
	case *BlockAffinity:
		v.blockAffinity(&x.Spec)
	case *IPAMHandle:
		v.ipamHandle(&x.Spec)
	}
	if len(v.errs) == 0 {
		return nil
	}
	return &ValidationError{Kind: kind, Namespace: r.GetNamespace(), Name: r.GetName(), Errors: v.errs}
}

// validator collects the problems of one resource.
type validator struct{ errs []FieldError }

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func idx(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

var (
	nameLabelFmt = `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
	// NetworkPolicy names: a DNS label, optionally "<tier>."-prefixed, or
	// Calico's names for converted Kubernetes policies.
	networkPolicyNameRegex = regexp.MustCompile(`^((` + nameLabelFmt + `)(\.` + nameLabelFmt + `)?|((knp|ossg)\.default\.` +
		nameLabelFmt + `(\.` + nameLabelFmt + `)*))$`)
	globalNetworkPolicyNameRegex = regexp.MustCompile(`^(` + nameLabelFmt + `\.)?` + nameLabelFmt + `$`)
	interfaceRegex               = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,15}$`)
	ignoredInterfaceRegex        = regexp.MustCompile(`^[a-zA-Z0-9_.*-]{1,15}$`)
	ifaceFilterRegex             = regexp.MustCompile(`^[a-zA-Z0-9:._+-]{1,15}$`)
	containerIDRegex             = regexp.MustCompile(`^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`)
	prometheusHostRegex          = regexp.MustCompile(`^[a-zA-Z0-9:._+-]{1,64}$`)
)

const (
	nameRules            = "use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"
	labelNameRules       = "use lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
	annotationsSizeLimit = 256 * 1024
)

func isSubdomain(s string) bool { return len(k8svalidation.IsDNS1123Subdomain(s)) == 0 }
func isLabel(s string) bool     { return len(k8svalidation.IsDNS1123Label(s)) == 0 }

// meta checks metadata: the name by the kind's rules, the namespace by the
// kind's scope, and label and annotation syntax.
func (v *validator) meta(r Resource, info KindInfo) {
	name := r.GetName()
	switch {
	case name == "":
		v.add("metadata.name", "a name is required")
	case info.Internal:
		// IPAM records are named by Tabby itself from CIDRs, node names and
		// handle IDs; only what would break a datastore key is refused.
		if len(name) > 253 || strings.ContainsAny(name, "/ \t\n\r") {
			v.add("metadata.name", "%q is not a valid name: at most 253 characters, no '/' or whitespace", name)
		}
	case info.Kind == "BGPConfiguration" || info.Kind == "FelixConfiguration":
		if name != DefaultConfigName && !(strings.HasPrefix(name, NodeConfigPrefix) && isSubdomain(name)) {
			v.add("metadata.name", "%q is not a valid name: must be %q or %q followed by a node name", name, DefaultConfigName, NodeConfigPrefix)
		}
	case info.Kind == "IPAMConfiguration":
		if name != DefaultConfigName {
			v.add("metadata.name", "%q is not a valid name: the only IPAMConfiguration is %q", name, DefaultConfigName)
		}
	case info.Kind == "NetworkPolicy":
		if len(name) > 253 || !networkPolicyNameRegex.MatchString(name) {
			v.add("metadata.name", "%q is not a valid name: %s, with at most one '.' (a tier prefix)", name, labelNameRules)
		}
	case info.Kind == "GlobalNetworkPolicy":
		if len(name) > 253 || !globalNetworkPolicyNameRegex.MatchString(name) {
			v.add("metadata.name", "%q is not a valid name: %s, with at most one '.' (a tier prefix)", name, labelNameRules)
		}
	default:
		if !isSubdomain(name) {
			v.add("metadata.name", "%q is not a valid name: %s", name, nameRules)
		}
	}
	ns := r.GetNamespace()
	switch {
	case info.Namespaced && ns == "":
		v.add("metadata.namespace", "a namespace is required: %s is namespaced", info.Kind)
	case info.Namespaced && !isLabel(ns):
		v.add("metadata.namespace", "%q is not a valid namespace: %s", ns, labelNameRules)
	case !info.Namespaced && ns != "":
		v.add("metadata.namespace", "%q must be empty: %s is cluster-scoped", ns, info.Kind)
	}
	labels := r.GetLabels()
	for _, k := range sortedStringKeys(labels) {
		path := joinKey("metadata.labels", k)
		if msgs := k8svalidation.IsQualifiedName(k); len(msgs) > 0 {
			v.add(path, "%q is not a valid label key: %s", k, msgs[0])
		}
		if msgs := k8svalidation.IsValidLabelValue(labels[k]); len(msgs) > 0 {
			v.add(path, "%q is not a valid label value: %s", labels[k], msgs[0])
		}
	}
	v.annotations("metadata.annotations", r.GetAnnotations())
}

func (v *validator) annotations(path string, ann map[string]string) {
	total := 0
	for _, k := range sortedStringKeys(ann) {
		if msgs := k8svalidation.IsQualifiedName(strings.ToLower(k)); len(msgs) > 0 {
			v.add(joinKey(path, k), "%q is not a valid annotation key: %s", k, msgs[0])
		}
		total += len(k) + len(ann[k])
	}
	if total > annotationsSizeLimit {
		v.add(path, "total size %d bytes is over the limit of %d bytes", total, annotationsSizeLimit)
	}
}

func (v *validator) noNamespaceLabel(labels map[string]string) {
	if _, ok := labels[LabelNamespace]; ok {
		v.add(joinKey("metadata.labels", LabelNamespace), "%q is reserved: Calico sets it on namespaced endpoints", LabelNamespace)
	}
}

func sortedStringKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// --- shared field checks -----------------------------------------------------

// selector checks a selector expression; empty means "not set".
func (v *validator) selector(path, s string) {
	if s == "" {
		return
	}
	if err := selector.Validate(s); err != nil {
		v.add(path, "%s", err.Error())
	}
}

// resourceName checks a field that names another resource (a node, a
// profile): a DNS-1123 subdomain.
func (v *validator) resourceName(path, s string) {
	if s != "" && !isSubdomain(s) {
		v.add(path, "%q is not a valid name: %s", s, nameRules)
	}
}

// oneOf checks an enumerated string; empty means "not set".
func (v *validator) oneOf(path, s string, allowed ...string) {
	if s == "" {
		return
	}
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	v.add(path, "%q is not one of %s", s, strings.Join(allowed, ", "))
}

// oneOfFold is oneOf for the fields whose Calico CRD pattern is
// case-insensitive.
func (v *validator) oneOfFold(path, s string, allowed ...string) {
	for _, a := range allowed {
		if strings.EqualFold(s, a) {
			return
		}
	}
	v.oneOf(path, s, allowed...)
}

// parseCIDROrIP parses "10.0.0.0/24" or a bare address, which stands for a
// single-address prefix, as Calico's ParseCIDROrIP does. Zones are refused.
func parseCIDROrIP(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("zones are not allowed")
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// cidr checks a CIDR (or bare IP); when strict, it must also be a network
// address. It returns the prefix and whether it parsed.
func (v *validator) cidr(path, s string, strict bool) (netip.Prefix, bool) {
	p, err := parseCIDROrIP(s)
	if err != nil {
		v.add(path, "%q is not a valid CIDR", s)
		return p, false
	}
	if strict && p != p.Masked() {
		v.add(path, "%q is not a network address; did you mean %s", s, p.Masked())
		return p, false
	}
	return p, true
}

// nets checks a list of CIDRs (non-strict, as Calico's "cidr" validator).
func (v *validator) nets(path string, nets []string) {
	for i, n := range nets {
		v.cidr(idx(path, i), n, false)
	}
}

// ip checks a bare address of the given family (4, 6, or 0 for either).
func (v *validator) ip(path, s string, family int) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		v.add(path, "%q is not a valid IP address", s)
		return a, false
	}
	if family == 4 && !a.Is4() {
		v.add(path, "%q is not an IPv4 address", s)
		return a, false
	}
	if family == 6 && !a.Is6() {
		v.add(path, "%q is not an IPv6 address", s)
		return a, false
	}
	return a, true
}

func (v *validator) mac(path, s string) {
	if s == "" {
		return
	}
	if _, err := net.ParseMAC(s); err != nil {
		v.add(path, "%q is not a valid MAC address", s)
	}
}

// positiveDuration checks an optional duration that must be more than zero.
func (v *validator) positiveDuration(path string, d *metav1.Duration) {
	if d != nil && d.Duration <= 0 {
		v.add(path, "%q must be more than zero", d.Duration.String())
	}
}

// nonNegativeDuration checks an optional interval where 0 means "disabled".
func (v *validator) nonNegativeDuration(path string, d *metav1.Duration) {
	if d != nil && d.Duration < 0 {
		v.add(path, "%q must not be negative", d.Duration.String())
	}
}

// intRange checks an optional integer.
func (v *validator) intRange(path string, p *int, lo, hi int) {
	if p != nil && (*p < lo || *p > hi) {
		v.add(path, "%d is out of range %d-%d", *p, lo, hi)
	}
}

func (v *validator) regexpField(path, s string) {
	if s == "" {
		return
	}
	if _, err := regexp.Compile(s); err != nil {
		v.add(path, "%q is not a valid regular expression: %v", s, err)
	}
}

// asNumber checks an AS number that is set: 0 is not an AS number.
func (v *validator) asNumber(path string, a ASNumber) {
	if a == 0 {
		v.add(path, "0 is not a valid AS number: must be 1-%d", uint64(MaxASNumber))
	}
}

// password checks a BGP password source: exactly one of secretKeyRef, value
// and file; a secret reference needs both name and key.
func (v *validator) password(path string, p *BGPPassword) {
	if p == nil {
		return
	}
	set := 0
	for _, b := range []bool{p.SecretKeyRef != nil, p.Value != "", p.File != ""} {
		if b {
			set++
		}
	}
	switch {
	case set == 0:
		v.add(path, "one of secretKeyRef, value or file is required")
	case set > 1:
		v.add(path, "only one of secretKeyRef, value and file may be set")
	}
	if ref := p.SecretKeyRef; ref != nil {
		if ref.Name == "" {
			v.add(path+".secretKeyRef.name", "a secret name is required")
		} else if !isSubdomain(ref.Name) {
			v.add(path+".secretKeyRef.name", "%q is not a valid secret name: %s", ref.Name, nameRules)
		}
		if ref.Key == "" {
			v.add(path+".secretKeyRef.key", "a key is required")
		} else if msgs := k8svalidation.IsConfigMapKey(ref.Key); len(msgs) > 0 {
			v.add(path+".secretKeyRef.key", "%q is not a valid secret key: %s", ref.Key, msgs[0])
		}
	}
}
