package autodetect

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// Result is a detected node address.
type Result struct {
	Interface string
	MTU       int
	Prefix    netip.Prefix // the address with its interface's prefix length
}

// Detect finds the node's address of one family (4 or 6) with method m.
// Errors say what was looked for and not found, without the variable name.
func Detect(m Method, family int, sys System) (Result, error) {
	if m.Kind == CanReach {
		return detectByReach(m.Dest, family, sys)
	}
	ifaces, err := sys.Interfaces()
	if err != nil {
		return Result{}, err
	}
	candidates := filter(ifaces, m)
	if m.Kind == InterfaceRegex && len(candidates) == 0 {
		return Result{}, errors.New("no interface matches")
	}
	for _, ifc := range candidates {
		for _, a := range ifc.Addrs {
			if usable(a.Addr(), family) && inAny(a.Addr(), m.CIDRs) {
				return Result{Interface: ifc.Name, MTU: ifc.MTU, Prefix: a}, nil
			}
		}
	}
	fam := familyName(family)
	switch m.Kind {
	case InterfaceRegex:
		return Result{}, fmt.Errorf("matching interfaces (%s) have no global %s address", names(candidates), fam)
	case CIDR:
		return Result{}, fmt.Errorf("no interface has a global %s address in %s", fam, joinPrefixes(m.CIDRs))
	}
	return Result{}, fmt.Errorf("no interface has a global %s address (interfaces matching %s are never used)",
		fam, excludedSummary(m))
}

// LocalPrefix finds addr on a host interface, to complete an address given
// without a prefix length and to learn its interface. ok is false when no
// interface has it.
func LocalPrefix(addr netip.Addr, sys System) (Result, bool, error) {
	ifaces, err := sys.Interfaces()
	if err != nil {
		return Result{}, false, err
	}
	for _, ifc := range ifaces {
		for _, a := range ifc.Addrs {
			if a.Addr() == addr {
				return Result{Interface: ifc.Name, MTU: ifc.MTU, Prefix: a}, true, nil
			}
		}
	}
	return Result{}, false, nil
}

func detectByReach(dest string, family int, sys System) (Result, error) {
	src, err := sys.SourceAddr(dest, family)
	if err != nil {
		return Result{}, fmt.Errorf("cannot reach %s over %s: %w", dest, familyName(family), err)
	}
	res, ok, err := LocalPrefix(src, sys)
	if err != nil {
		return Result{}, err
	}
	if !ok {
		return Result{}, fmt.Errorf("the source address towards %s, %s, is on no local interface", dest, src)
	}
	return res, nil
}

// filter applies the method's include and exclude patterns. Interfaces are
// tried from the highest index down, as Calico does, so that a host that
// moves from Calico to Tabby keeps its node address.
func filter(ifaces []Interface, m Method) []Interface {
	sorted := append([]Interface(nil), ifaces...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Index > sorted[j].Index })
	var out []Interface
	for _, ifc := range sorted {
		if m.include != nil && !m.include.MatchString(ifc.Name) {
			continue
		}
		if m.exclude != nil && m.exclude.MatchString(ifc.Name) {
			continue
		}
		out = append(out, ifc)
	}
	return out
}

// usable is Calico's test: a global unicast address of the right family
// (not loopback, link-local or multicast).
func usable(a netip.Addr, family int) bool {
	if family == 4 && !a.Is4() || family == 6 && !a.Is6() {
		return false
	}
	return a.IsGlobalUnicast()
}

func inAny(a netip.Addr, cidrs []netip.Prefix) bool {
	if len(cidrs) == 0 {
		return true
	}
	for _, c := range cidrs {
		if c.Contains(a) {
			return true
		}
	}
	return false
}

func familyName(family int) string {
	if family == 6 {
		return "IPv6"
	}
	return "IPv4"
}

func names(ifaces []Interface) string {
	n := make([]string, len(ifaces))
	for i, ifc := range ifaces {
		n[i] = ifc.Name
	}
	return strings.Join(n, ", ")
}

func excludedSummary(m Method) string {
	s := "docker*, cali*, veth*, lo, tunl*, ..."
	if m.Kind == SkipInterface {
		s += ", " + strings.Join(m.Patterns, ", ")
	}
	return s
}
