// Package dataplane is the calico plugin's only contact with the kernel:
// it creates a pod's veth pair the way Calico does (host side "cali..." with
// MAC ee:ee:ee:ee:ee:ee and proxy ARP/NDP sysctls; pod side CNI_IFNAME with
// the pod's /32 and /128 addresses and routes via the 169.254.1.1 gateway,
// or via the host veth's link-local address for IPv6), removes it, and
// compares the kernel with what an ADD built (CNI CHECK).
//
// It must not program host routes to pods: the node agent owns the FIB
// (ARCHITECTURE.md decision 1) and installs <ip>/32 dev cali... itself
// before AddWorkload returns. CHECK only reads them.
package dataplane
