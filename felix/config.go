package felix

import (
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tabbynet/tabby/bgp"
	"github.com/tabbynet/tabby/felix/dataplane"
)

// Defaults for Config's zero values.
const (
	// DefaultRouteRefreshInterval is Calico's routeRefreshInterval.
	DefaultRouteRefreshInterval = 90 * time.Second
	// DefaultMinApplyInterval coalesces bursts of changes (a node starting
	// 100 pods) into few applies while keeping a pod's wait short.
	DefaultMinApplyInterval = 10 * time.Millisecond
	// DefaultRetryInitialBackoff and DefaultRetryMaxBackoff bound the retry
	// of a failed apply (doubling in between).
	DefaultRetryInitialBackoff = 100 * time.Millisecond
	DefaultRetryMaxBackoff     = 30 * time.Second
	// DefaultLocalIntentTTL bounds how long an endpoint recorded by the CNI
	// path may disagree with the datastore before the datastore wins.
	DefaultLocalIntentTTL = time.Minute
)

// IPForwarding values, as Calico's FelixConfiguration spells them.
const (
	IPForwardingEnabled  = "Enabled"
	IPForwardingDisabled = "Disabled"
)

// Dataplane is what Felix needs from felix/dataplane; *dataplane.Reconciler
// implements it.
type Dataplane interface {
	Apply(dataplane.State) (dataplane.State, error)
	Check([]dataplane.Route) ([]string, error)
}

// Config tunes Felix. The zero value is valid: every zero field takes its
// default.
type Config struct {
	// RouteRefreshInterval is the period of the full resync that repairs
	// drift (Calico's routeRefreshInterval, default 90s).
	RouteRefreshInterval time.Duration
	// MinApplyInterval is the least time between two applies (default 10ms).
	MinApplyInterval time.Duration
	// RetryInitialBackoff and RetryMaxBackoff bound retries of a failed apply.
	RetryInitialBackoff time.Duration
	RetryMaxBackoff     time.Duration
	// LocalIntentTTL: see DefaultLocalIntentTTL.
	LocalIntentTTL time.Duration
	// IPForwarding is "Enabled" (default: net.ipv4.ip_forward is kept at 1)
	// or "Disabled" (left alone).
	IPForwarding string
	// IPv6Support (default true, like Calico's ipv6Support) programs IPv6
	// routes and IPv6 forwarding sysctls. Set it false on a kernel without IPv6.
	IPv6Support *bool
	// Registerer receives Felix's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Dataplane is where states are applied; nil means the kernel of the
	// current network namespace.
	Dataplane Dataplane
	// RemoteRoutes is where routes to other nodes' blocks (and anything
	// else learned over BGP) come from; nil when BGP is off. Until it
	// reports its initial sync, remote routes already in the kernel are
	// kept rather than pruned.
	RemoteRoutes RemoteRouteSource
}

// RemoteRouteSource is the BGP side of Felix (bgp/controller.Controller
// implements it): learned routes as deltas, one consumer, and the end of
// BGP's initial sync.
type RemoteRouteSource interface {
	// RouteChanges is signalled when TakeRouteChanges has something.
	RouteChanges() <-chan struct{}
	// TakeRouteChanges returns the routes added or changed and the prefixes
	// withdrawn since the previous call.
	TakeRouteChanges() (changed []bgp.Route, withdrawn []netip.Prefix)
	// Synced is closed once BGP's initial sync is over.
	Synced() <-chan struct{}
}

func (c Config) withDefaults() Config {
	if c.RouteRefreshInterval <= 0 {
		c.RouteRefreshInterval = DefaultRouteRefreshInterval
	}
	if c.MinApplyInterval <= 0 {
		c.MinApplyInterval = DefaultMinApplyInterval
	}
	if c.RetryInitialBackoff <= 0 {
		c.RetryInitialBackoff = DefaultRetryInitialBackoff
	}
	if c.RetryMaxBackoff <= 0 {
		c.RetryMaxBackoff = DefaultRetryMaxBackoff
	}
	if c.RetryMaxBackoff < c.RetryInitialBackoff {
		c.RetryMaxBackoff = c.RetryInitialBackoff
	}
	if c.LocalIntentTTL <= 0 {
		c.LocalIntentTTL = DefaultLocalIntentTTL
	}
	if c.IPForwarding == "" {
		c.IPForwarding = IPForwardingEnabled
	}
	if c.IPv6Support == nil {
		t := true
		c.IPv6Support = &t
	}
	return c
}
