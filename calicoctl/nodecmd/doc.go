// Package nodecmd is `calicoctl node`: today `node status`, which asks the
// local calico-node agent (its unix socket, CALICO_AGENT_SOCKET, default
// /var/run/calico/agent.sock) for its state and BGP peers and prints them
// in Calico's format, or as JSON with -o json.
//
// Calico scrapes BIRD's control socket for this; Tabby reads the agent's
// Status RPC, so the table is built from structured data. The package only
// talks to the agent: it never reads the datastore or the kernel.
package nodecmd
