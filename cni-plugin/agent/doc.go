// Package agent is the CNI plugins' client of the calico-node agent: a gRPC
// connection over the agent's unix socket (ARCHITECTURE.md decision 3), and
// the translation of its failures into CNI errors that say what to fix, the
// most important being "the agent is not there" (code 11 on ADD, so the
// runtime retries; an error on DEL, so a DEL never pretends to have cleaned
// up what only the agent can clean).
//
// It owns no policy: which RPC to call, and what to do when one fails, is
// the plugins' business.
package agent
