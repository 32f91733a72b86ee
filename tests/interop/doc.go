// Package interop holds Tabby's multi-node tests (test files only): the
// three-node mesh, route reflector and ToR topologies built by tests/lab,
// interop with real BIRD and FRR peers (BIRD as a fourth mesh node and as a
// route reflector, FRR as an eBGP top-of-rack router with TCP-MD5 and as a
// route reflector), node removal, an agent SIGKILLed under traffic, and
// bad peers. Every test builds its own lab (namespaces "tlab-<pid>-<seq>-*")
// and tears it down, also on failure and on Ctrl-C; none decides on a
// wall-clock figure.
package interop
