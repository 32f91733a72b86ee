// Package ipamcmd is `calicoctl ipam`: show, check, release and configure,
// with Calico's flags and output. It is a thin shell over package ipam: it
// parses flags, calls ipam, and prints; the allocator's rules all live in
// ipam. It reaches the datastore only through the open function it is given
// and writes only to its stdout/stderr and to the report file it is asked
// for (`check -o`).
package ipamcmd
