// Package cnierr builds the CNI error results the plugins print: a code from
// the CNI spec and a message that says what to fix. It owns the choice of
// code for each kind of failure (bad netconf, bad environment, agent down,
// agent refused) and nothing else.
package cnierr
