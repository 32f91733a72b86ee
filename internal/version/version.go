// Package version holds the build's version and commit, set with -ldflags by
// the Makefile; plain `go build` leaves the defaults.
package version

var (
	Version = "dev"
	Commit  = "unknown"
)
