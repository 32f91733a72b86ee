package gobgp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	tbgp "github.com/tabbynet/tabby/bgp"
)

// localPath builds a locally originated path (origin IGP; GoBGP adds the
// AS path on the way out).
func localPath(prefix netip.Prefix, nextHop netip.Addr, withdraw bool) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(prefix)
	if err != nil {
		return nil, err
	}
	nh, err := bgp.NewPathAttributeNextHop(nextHop)
	if err != nil {
		return nil, err
	}
	return &apiutil.Path{
		Family:     familyOf(prefix.Addr()),
		Nlri:       nlri,
		Attrs:      []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP), nh},
		Age:        time.Now().Unix(),
		Withdrawal: withdraw,
	}, nil
}

// applyAdvertisements adds and withdraws only the difference between what
// is advertised and what is desired.
func (s *Speaker) applyAdvertisements(ads []tbgp.Advertisement) error {
	srv := s.srvHandle()
	if srv == nil {
		return errors.New("speaker not started")
	}
	want := map[netip.Prefix]netip.Addr{}
	var errs []error
	for _, a := range ads {
		p := a.Prefix.Masked()
		if !p.IsValid() || !a.NextHop.IsValid() || p.Addr().Is4() != a.NextHop.Is4() {
			errs = append(errs, fmt.Errorf("advertisement %s via %s: prefix and next hop must be valid and of the same family", a.Prefix, a.NextHop))
			continue
		}
		want[p] = a.NextHop
	}

	var del []*apiutil.Path
	var delKeys []netip.Prefix
	for p, nh := range s.applied.ads {
		if w, ok := want[p]; ok && w == nh {
			continue
		}
		if _, ok := want[p]; ok {
			continue // next hop change: the AddPath below replaces it
		}
		path, err := localPath(p, nh, true)
		if err != nil {
			errs = append(errs, fmt.Errorf("withdraw %s: %w", p, err))
			continue
		}
		del = append(del, path)
		delKeys = append(delKeys, p)
	}
	if len(del) > 0 {
		if err := srv.DeletePath(apiutil.DeletePathRequest{Paths: del}); err != nil {
			errs = append(errs, fmt.Errorf("withdraw %d prefixes: %w", len(del), err))
		} else {
			for _, p := range delKeys {
				delete(s.applied.ads, p)
			}
			s.log.Info("BGP advertisements withdrawn", "prefixes", delKeys)
		}
	}

	var add []*apiutil.Path
	var addKeys []netip.Prefix
	for p, nh := range want {
		if old, ok := s.applied.ads[p]; ok && old == nh {
			continue
		}
		path, err := localPath(p, nh, false)
		if err != nil {
			errs = append(errs, fmt.Errorf("advertise %s: %w", p, err))
			continue
		}
		add = append(add, path)
		addKeys = append(addKeys, p)
	}
	if len(add) > 0 {
		resps, err := srv.AddPath(apiutil.AddPathRequest{Paths: add})
		if err != nil && len(resps) == 0 {
			errs = append(errs, fmt.Errorf("advertise %d prefixes: %w", len(add), err))
		} else {
			for i, p := range addKeys {
				if i < len(resps) && resps[i].Error != nil {
					errs = append(errs, fmt.Errorf("advertise %s: %w", p, resps[i].Error))
					continue
				}
				s.applied.ads[p] = want[p]
			}
			s.log.Info("BGP advertisements added", "prefixes", addKeys)
		}
	}
	return errors.Join(errs...)
}
