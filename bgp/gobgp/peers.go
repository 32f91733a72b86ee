package gobgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"google.golang.org/protobuf/proto"

	tbgp "github.com/tabbynet/tabby/bgp"
)

// appliedPeer is a peer as last given to GoBGP.
type appliedPeer struct {
	cfg tbgp.PeerConfig
	api *api.Peer // as sent, with LocalRestarting cleared (see peerAPI)
}

// peerAPI builds the complete GoBGP peer for cfg. It is always built whole:
// GoBGP fills defaults into anything left out, and an UpdatePeer built from
// a partial struct resets the session.
func (s *Speaker) peerAPI(cfg tbgp.PeerConfig, restarting bool) *api.Peer {
	s.mu.Lock()
	global := s.global
	s.mu.Unlock()
	localAS := global.ASN
	if cfg.LocalASN != 0 {
		localAS = cfg.LocalASN
	}
	restart := cfg.RestartTime
	if restart == 0 {
		restart = tbgp.DefaultRestartTime
	}
	fam := familyOf(cfg.Address)
	p := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: cfg.Address.String(),
			PeerAsn:         cfg.ASN,
			LocalAsn:        cfg.LocalASN,
			AuthPassword:    cfg.Password,
			AllowOwnAsn:     uint32(cfg.AllowOwnAS),
		},
		Transport: &api.Transport{
			RemotePort:  uint32(cfg.EffectivePort()),
			PassiveMode: cfg.Passive,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:           uint64(max(1, s.opts.ConnectRetry.Seconds())),
			IdleHoldTimeAfterReset: uint64(max(1, s.opts.IdleHoldTime.Seconds())),
		}},
		// Graceful restart on every session, mesh included, as Calico's
		// BIRD template does. RestartTime is what peers wait for us.
		GracefulRestart: &api.GracefulRestart{
			Enabled:         true,
			RestartTime:     uint32(restart.Seconds()),
			DeferralTime:    uint32(max(1, global.InitialSyncTimeout.Seconds())),
			LocalRestarting: restarting,
		},
		// One family per session, the family of its addresses, set
		// explicitly: Calico peers IPv4 and IPv6 separately, and an IPv6
		// route on an IPv4 eBGP session would leave with an IPv4-mapped next
		// hop.
		AfiSafis: []*api.AfiSafi{{
			Config:            &api.AfiSafiConfig{Family: apiutil.ToApiFamily(fam.Afi(), fam.Safi()), Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}},
		}},
	}
	if cfg.LocalAddress.IsValid() {
		p.Transport.LocalAddress = cfg.LocalAddress.String()
	}
	if cfg.KeepaliveTime > 0 {
		k := uint64(max(1, cfg.KeepaliveTime.Seconds()))
		p.Timers.Config.KeepaliveInterval = k
		p.Timers.Config.HoldTime = 3 * k
	}
	if cfg.RouteReflectorClient {
		p.RouteReflector = &api.RouteReflector{RouteReflectorClient: true, RouteReflectorClusterId: cfg.RouteReflectorClusterID}
	}
	switch {
	case cfg.TTLSecurity > 0:
		// GTSM: send with TTL 255, accept only TTL >= 256-hops.
		p.TtlSecurity = &api.TtlSecurity{Enabled: true, TtlMin: uint32(256 - int(cfg.TTLSecurity))}
	case cfg.ASN != localAS:
		// Calico's BIRD sessions are all multihop; GoBGP would send eBGP
		// with TTL 1 and miss a peer one router away.
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	return p
}

// sessionEqual compares two built peers, ignoring LocalRestarting (it only
// matters when the peer is added).
func sessionEqual(a, b *api.Peer) bool {
	ac, bc := proto.Clone(a).(*api.Peer), proto.Clone(b).(*api.Peer)
	ac.GracefulRestart.LocalRestarting, bc.GracefulRestart.LocalRestarting = false, false
	return proto.Equal(ac, bc)
}

// onlyTimersDiffer reports whether a and b differ in timers alone: GoBGP
// applies those with UpdatePeer on the next session, without a reset.
func onlyTimersDiffer(a, b *api.Peer) bool {
	ac, bc := proto.Clone(a).(*api.Peer), proto.Clone(b).(*api.Peer)
	ac.Timers, bc.Timers = nil, nil
	return sessionEqual(ac, bc)
}

// applyPeers makes GoBGP's peers the desired ones, touching only what
// changed. It keeps going after a failure.
func (s *Speaker) applyPeers(ctx context.Context, d desiredState) error {
	srv := s.srvHandle()
	if srv == nil {
		return errors.New("speaker not started")
	}
	s.mu.Lock()
	restarting := s.global.Restarting
	s.mu.Unlock()
	// Only peers configured before the initial sync is over take part in
	// the restart: later ones have nothing of ours to hold.
	select {
	case <-s.synced.done:
		restarting = false
	default:
	}

	var errs []error
	want := map[netip.Addr]tbgp.PeerConfig{}
	for _, p := range d.peers {
		if _, dup := want[p.Address]; dup {
			errs = append(errs, fmt.Errorf("peer %s is configured twice; keeping the first", p.Address))
			continue
		}
		want[p.Address] = p
	}
	for addr, old := range s.applied.peers {
		// Keep what is still wanted; a session whose config turned bad is
		// removed from GoBGP, and a bad one staying bad is left as it is.
		if w, ok := want[addr]; ok && (w.ConfigError == "" || old.api == nil) {
			continue
		}
		if old.api != nil {
			if err := srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
				errs = append(errs, fmt.Errorf("delete BGP peer %s: %w", addr, err))
				continue
			}
			s.log.Info("BGP peer removed", "peer", addr)
		}
		delete(s.applied.peers, addr)
		s.peers.removed(addr)
	}
	for addr, cfg := range want {
		old, had := s.applied.peers[addr]
		if cfg.ConfigError != "" {
			if !had || old.cfg.ConfigError != cfg.ConfigError {
				s.log.Warn("BGP peer not configured", "peer", addr, "source", cfg.Source, "error", cfg.ConfigError)
				s.peers.configured(addr, cfg.ConfigError)
			}
			s.applied.peers[addr] = appliedPeer{cfg: cfg}
			continue
		}
		p := s.peerAPI(cfg, restarting)
		switch {
		case had && old.api != nil && sessionEqual(old.api, p):
			// Type, source or cluster membership may have changed: they
			// are not part of the session.
			s.applied.peers[addr] = appliedPeer{cfg: cfg, api: old.api}
		case had && old.api != nil && onlyTimersDiffer(old.api, p):
			if _, err := srv.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: p}); err != nil {
				errs = append(errs, fmt.Errorf("update BGP peer %s: %w", addr, err))
				continue
			}
			s.applied.peers[addr] = appliedPeer{cfg: cfg, api: p}
			s.log.Info("BGP peer timers updated", "peer", addr)
		default:
			if had && old.api != nil {
				// Anything else GoBGP would apply by deleting and re-adding
				// the neighbor anyway; do it explicitly so the new config is
				// whole.
				if err := srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
					errs = append(errs, fmt.Errorf("replace BGP peer %s: delete: %w", addr, err))
					continue
				}
				delete(s.applied.peers, addr)
			}
			s.peers.configured(addr, "")
			if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
				errs = append(errs, fmt.Errorf("add BGP peer %s (%s): %w", addr, cfg.Source, err))
				s.peers.configured(addr, fmt.Sprintf("Configuration rejected: %v", err))
				continue
			}
			s.applied.peers[addr] = appliedPeer{cfg: cfg, api: p}
			s.log.Info("BGP peer configured", "peer", addr, "port", cfg.EffectivePort(), "asn", cfg.ASN, "type", cfg.Type,
				"passive", cfg.Passive, "rrClient", cfg.RouteReflectorClient, "restarting", restarting, "source", cfg.Source)
		}
	}
	return errors.Join(errs...)
}

// familyName is for logs and errors.
func familyName(f bgp.Family) string {
	if f == bgp.RF_IPv4_UC {
		return "IPv4"
	}
	return "IPv6"
}
