package bgp

import (
	"context"
	"net/netip"
	"time"
)

// DefaultASNumber is Calico's default AS (BGPConfiguration asNumber).
const DefaultASNumber = 64512

// DefaultListenPort is the BGP port.
const DefaultListenPort = 179

// DefaultRestartTime is the graceful-restart time advertised to peers when
// maxRestartTime is not set: BIRD's default, which Calico inherits.
const DefaultRestartTime = 120 * time.Second

// DefaultInitialSyncTimeout bounds the wait for End-of-RIB from every peer
// after a start. It is short on purpose: GoBGP's own default (and
// kube-router's 360 s) leaves a restarted node silent for minutes when one
// peer is down or not GR-capable.
const DefaultInitialSyncTimeout = 30 * time.Second

// PeerType says why a session exists. The strings are what
// `calicoctl node status` prints in its PEER TYPE column.
type PeerType string

const (
	PeerTypeMesh     PeerType = "node-to-node mesh"
	PeerTypeGlobal   PeerType = "global"
	PeerTypeNode     PeerType = "node specific"
	PeerTypeRRClient PeerType = "route reflector client"
)

// GlobalConfig is the speaker's identity. GoBGP cannot change AS, router ID
// or listener live, so a change of any of these means Stop and a new Start.
type GlobalConfig struct {
	// RouterID must be an IPv4 address (BGP identifiers are 4 bytes even
	// for IPv6-only speakers).
	RouterID netip.Addr
	ASN      uint32
	// ListenPort: 0 means 179; negative means do not listen (outbound only).
	ListenPort int
	// ListenAddresses: empty means every address (0.0.0.0, and :: when the
	// host has IPv6).
	ListenAddresses []netip.Addr
	// Restarting says this start follows an agent restart whose BGP routes
	// are still in the kernel and still held by peers in graceful-restart
	// helper mode. The speaker then sets the Restart State bit and defers
	// its own advertisements until End-of-RIB from all peers or
	// InitialSyncTimeout. It must be false on a first boot, or every boot
	// would wait for peers that have nothing to resend.
	Restarting bool
	// InitialSyncTimeout bounds how long Synced waits for End-of-RIB from
	// every peer; 0 means DefaultInitialSyncTimeout.
	InitialSyncTimeout time.Duration
}

// PeerConfig is one desired BGP session. Speakers compare consecutive
// values to decide whether a session must be touched, so every field that
// shapes the session is here and nothing else is.
type PeerConfig struct {
	Address netip.Addr
	// Port is the peer's BGP port; 0 means 179.
	Port uint16
	ASN  uint32
	// LocalASN overrides the speaker's AS for this session (BGPPeer
	// localASNumber); 0 means the global AS.
	LocalASN uint32
	Type     PeerType
	// ClusterInternal is true when the peer is another Tabby/Calico node:
	// routes from it outside the IP pools are rejected, and a route
	// reflector reflects pool routes to it.
	ClusterInternal bool
	// LocalAddress is the session's source address (sourceAddress
	// UseNodeIP); invalid means the kernel picks.
	LocalAddress netip.Addr
	// Passive waits for the peer to connect (the mesh race-avoidance rule).
	Passive bool
	// Password is the TCP-MD5 key; empty means none.
	Password string
	// KeepaliveTime, when set, sets the keepalive interval (hold time is
	// three times it); 0 keeps the speaker's defaults.
	KeepaliveTime time.Duration
	// RestartTime is the graceful-restart time advertised to the peer; 0
	// means DefaultRestartTime. Graceful restart is always negotiated.
	RestartTime time.Duration
	// TTLSecurity, when not zero, enables GTSM: the peer must be at most
	// this many hops away.
	TTLSecurity uint8
	// AllowOwnAS accepts routes whose AS path holds the local AS up to this
	// many times (numAllowedLocalASNumbers).
	AllowOwnAS uint8
	// RouteReflectorClient makes this speaker a route reflector for the
	// peer, with RouteReflectorClusterID (dotted IPv4 form).
	RouteReflectorClient    bool
	RouteReflectorClusterID string
	// Source names the resources that asked for this peer, for logs.
	Source string
	// ConfigError, when set, keeps the session down and is reported as the
	// peer's last error (e.g. an unreadable password file).
	ConfigError string
}

// EffectivePort is Port with the default applied.
func (p PeerConfig) EffectivePort() uint16 {
	if p.Port == 0 {
		return DefaultListenPort
	}
	return p.Port
}

// Advertisement is one prefix this node originates.
type Advertisement struct {
	Prefix  netip.Prefix
	NextHop netip.Addr
}

// Policy holds what the speaker's import and export filters are built from.
type Policy struct {
	// Pools are the cluster's IP pool CIDRs. Cluster-internal peers may
	// only send routes inside them; a route reflector reflects routes
	// inside them to its cluster-internal peers.
	Pools []netip.Prefix
	// OwnBlocks are the IPAM blocks affine to this node. A learned route
	// for one of them, or for a non-host prefix inside one, is a hijack and
	// is rejected. Host routes inside them are accepted: they are addresses
	// another node borrowed from our block.
	OwnBlocks []netip.Prefix
}

// Route is a learned best path, as handed to felix/calc.
type Route struct {
	Prefix  netip.Prefix
	NextHop netip.Addr
	// Peer and PeerASN name the neighbor the path came from.
	Peer    netip.Addr
	PeerASN uint32
}

// Session states, as GoBGP and BIRD name them.
const (
	StateIdle        = "Idle"
	StateConnect     = "Connect"
	StateActive      = "Active"
	StateOpenSent    = "OpenSent"
	StateOpenConfirm = "OpenConfirm"
	StateEstablished = "Established"
)

// PeerStatus is one session's state for `calicoctl node status` and the
// agent's Status RPC.
type PeerStatus struct {
	Address netip.Addr
	Port    uint16
	ASN     uint32
	Type    PeerType
	Passive bool
	// State is one of the State* constants.
	State string
	// Since is when State was entered (or the peer configured).
	Since time.Time
	// LastError is the most recent reason the session is not up
	// (connection refused, notification received, bad password file...);
	// empty once established.
	LastError string
	// Routes received from the peer, accepted by import policy, and
	// advertised to it (summed over IPv4 and IPv6 unicast).
	RoutesReceived   uint64
	RoutesAccepted   uint64
	RoutesAdvertised uint64
}

// Established reports whether the session is up.
func (s PeerStatus) Established() bool { return s.State == StateEstablished }

// Speaker is the embedded BGP speaker as the rest of Tabby sees it. Set*
// calls record the desired state and return at once; one goroutine inside
// the speaker applies it (level-triggered, retried on failure, resynced
// periodically). All methods are safe for concurrent use.
type Speaker interface {
	// Start brings the speaker up with cfg; peers, policy and
	// advertisements set before Start are applied right after.
	Start(ctx context.Context, cfg GlobalConfig) error
	// SetPeers replaces the desired peer set. Sessions whose config did not
	// change are not touched.
	SetPeers(peers []PeerConfig)
	// SetPolicy replaces the import/export filter inputs. The filters are
	// applied before any peer is added, so no route is ever accepted or
	// sent unfiltered.
	SetPolicy(p Policy)
	// SetAdvertisements replaces the set of originated prefixes; only the
	// difference reaches the peers.
	SetAdvertisements(ads []Advertisement)
	// Learned returns a snapshot of the learned best paths.
	Learned() []Route
	// RouteChanges is signalled (coalescing, capacity one) whenever learned
	// routes changed since the last TakeRouteChanges.
	RouteChanges() <-chan struct{}
	// TakeRouteChanges returns, and forgets, the changes since the previous
	// call: routes added or replaced, and prefixes withdrawn. It is meant
	// for exactly one consumer (felix/calc); the first call returns every
	// learned route.
	TakeRouteChanges() (changed []Route, withdrawn []netip.Prefix)
	// Synced is closed once the initial sync is over: every peer of the
	// first peer set has sent End-of-RIB for its graceful-restart families
	// (or is established without graceful restart), or InitialSyncTimeout
	// has passed. Until then felix keeps BGP routes it finds in the kernel.
	Synced() <-chan struct{}
	// PeerStatus reports every desired peer, with route counts (which cost
	// a walk of the tables; the speaker may cache them for a few seconds).
	PeerStatus(ctx context.Context) ([]PeerStatus, error)
	// Sessions is PeerStatus without the accepted and advertised counts:
	// cheap enough to poll for readiness with 100k routes.
	Sessions(ctx context.Context) ([]PeerStatus, error)
	// SessionChanges is signalled (coalescing, capacity one) whenever a
	// session changed state or a peer was added or removed: what
	// Sessions reports may have changed. It is meant for one consumer
	// (the readiness watch).
	SessionChanges() <-chan struct{}
	// Stop ends the speaker. Graceful leaves the peers in graceful-restart
	// helper mode (no Cease is sent), so they keep our routes until we are
	// back; otherwise every session is closed with a Cease.
	Stop(graceful bool)
}
