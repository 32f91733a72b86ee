// Package invocation is what every command of the calico and calico-ipam
// plugins starts with: parse the netconf (a bad key is a code-7 error naming
// the key), set up logging from it, derive the workload from CNI_ARGS, and
// prepare a client of the calico-node agent. It owns that order and the
// error codes of those steps; the commands themselves live in the plugin
// packages.
package invocation
