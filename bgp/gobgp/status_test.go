package gobgp

import "testing"

// GoBGP's dial errors in BIRD's words, as `calicoctl node status` shows
// them after the state ("Active Socket: Connection refused").
func TestSocketError(t *testing.T) {
	for in, want := range map[string]string{
		"dial tcp 10.0.0.2:179: connect: connection refused":   "Socket: Connection refused",
		"dial tcp 10.0.0.2:179: connect: no route to host":     "Socket: No route to host",
		"dial tcp 10.0.0.2:179: i/o timeout":                   "Socket: Connection timed out",
		"dial tcp 10.0.0.2:179: connect: connection timed out": "Socket: Connection timed out",
		"": "Socket: error",
	} {
		if got := socketError(in); got != want {
			t.Errorf("socketError(%q) = %q, want %q", in, got, want)
		}
	}
}
