package dataplane

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// sysctl is one /proc/sys entry and the value Tabby wants in it.
type sysctl struct{ name, value string }

// workloadSysctlsV4 are the host-side veth settings of Calico's
// configureProcSysForInterface: forwarding for the pod's traffic,
// route_localnet so DNAT to 127.0.0.1 works, and proxy ARP with no delay so
// the host answers the pod's ARP for its 169.254.1.1 gateway at once.
func workloadSysctlsV4(iface string) []sysctl {
	return []sysctl{
		{"net/ipv4/conf/" + iface + "/forwarding", "1"},
		{"net/ipv4/conf/" + iface + "/route_localnet", "1"},
		{"net/ipv4/neigh/" + iface + "/proxy_delay", "0"},
		{"net/ipv4/conf/" + iface + "/proxy_arp", "1"},
	}
}

// workloadSysctlsV6: the pod's IPv6 gateway is the host veth's link-local
// address, answered through proxy NDP; a router must not take RAs from pods.
func workloadSysctlsV6(iface string) []sysctl {
	return []sysctl{
		{"net/ipv6/conf/" + iface + "/accept_ra", "0"},
		{"net/ipv6/conf/" + iface + "/forwarding", "1"},
		{"net/ipv6/conf/" + iface + "/proxy_ndp", "1"},
	}
}

func (r *Reconciler) setAll(list []sysctl) error {
	var errs []error
	for _, s := range list {
		if err := r.sys.Set(s.name, s.value); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ensureSysctl writes value only when the entry holds something else, so a
// periodic apply repairs drift without rewriting settings that are right.
func (r *Reconciler) ensureSysctl(name, value string) error {
	cur, err := r.sys.Get(name)
	if err == nil && cur == value {
		return nil
	}
	if err := r.sys.Set(name, value); err != nil {
		return err
	}
	r.log.Info("set sysctl", "name", name, "value", value, "was", cur)
	return nil
}

// configureIfaces writes the workload sysctls of each interface once per
// appearance of the interface (per ifindex), and forgets interfaces no
// longer wanted. Interfaces whose sysctls are all in place go into reached.
func (r *Reconciler) configureIfaces(want State, links *linkCache, reached map[string]struct{}) []error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(want.WorkloadIfaces)) {
		if !validIfaceName(name) {
			errs = append(errs, &IfaceError{Iface: name, Err: fmt.Errorf("invalid interface name")})
			continue
		}
		idx, err := links.index(name)
		if err != nil {
			delete(r.configured, name)
			errs = append(errs, &IfaceError{Iface: name, Err: err})
			continue
		}
		cfg := r.configured[name]
		if cfg.index != idx {
			cfg = ifaceConfig{index: idx} // new, or re-created under the same name
		}
		var ifErrs []error
		if !cfg.v4 {
			if err := r.setAll(workloadSysctlsV4(name)); err != nil {
				ifErrs = append(ifErrs, err)
			} else {
				cfg.v4 = true
			}
		}
		if want.IPv6Forwarding && !cfg.v6 {
			if err := r.setAll(workloadSysctlsV6(name)); err != nil {
				ifErrs = append(ifErrs, err)
			} else {
				cfg.v6 = true
			}
		}
		r.configured[name] = cfg
		if len(ifErrs) > 0 {
			errs = append(errs, &IfaceError{Iface: name, Err: errors.Join(ifErrs...)})
			continue
		}
		reached[name] = struct{}{}
	}
	for name := range r.configured {
		if _, ok := want.WorkloadIfaces[name]; !ok {
			delete(r.configured, name)
		}
	}
	return errs
}
