package bgp

import (
	"sort"
	"strings"
	"time"
)

// DefaultReadinessGrace is how long after start every peer must be
// established for the node to be ready; after it one is enough.
const DefaultReadinessGrace = 60 * time.Second

// Readiness applies Calico's bird-ready rule to a set of peer states: while
// the speaker has been running for less than grace, every peer must be
// Established; afterwards one Established peer is enough (a dead ToR must
// not take the whole node out of service). No peers means ready: a
// single-node cluster has nobody to talk to. detail names the peers that
// are not up, as Calico's "BGP not established with a,b" message does.
func Readiness(peers []PeerStatus, running, grace time.Duration) (ready bool, detail string) {
	if len(peers) == 0 {
		return true, ""
	}
	var down []string
	up := 0
	for _, p := range peers {
		if p.Established() {
			up++
			continue
		}
		down = append(down, p.Address.String())
	}
	if len(down) == 0 {
		return true, ""
	}
	sort.Strings(down)
	detail = "BGP not established with " + strings.Join(down, ",")
	if running >= grace && up > 0 {
		return true, detail
	}
	return false, detail
}
