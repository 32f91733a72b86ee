package ipam

import (
	"context"
	"errors"
	"fmt"

	v3 "github.com/tabbynet/tabby/api/v3"
	"github.com/tabbynet/tabby/datastore"
)

// Config is the cluster's IPAMConfiguration "default".
type Config struct {
	// StrictAffinity forbids taking addresses from blocks affine to other
	// nodes (and from blocks with no affinity).
	StrictAffinity bool
	// MaxBlocksPerHost caps how many blocks a node claims; 0 is unlimited.
	// At the cap, a node borrows unless StrictAffinity is set.
	MaxBlocksPerHost int
	// AutoAllocateBlocks lets nodes claim new blocks (default true).
	AutoAllocateBlocks bool
}

// DefaultConfig is what applies when no IPAMConfiguration exists (Calico's
// defaults).
func DefaultConfig() Config { return Config{AutoAllocateBlocks: true} }

const configName = "default"

func configKey() v3.Key { return v3.Key{Kind: "IPAMConfiguration", Name: configName} }

// GetConfig reads IPAMConfiguration "default", or returns the defaults when
// it does not exist. It never writes.
func (m *IPAM) GetConfig(ctx context.Context) (Config, error) {
	r, err := getAs[*v3.IPAMConfiguration](ctx, m.ds, configKey())
	if datastore.IsNotFound(err) {
		return DefaultConfig(), nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("read IPAM configuration: %w", err)
	}
	c := Config{
		StrictAffinity:     r.Spec.StrictAffinity,
		MaxBlocksPerHost:   int(r.Spec.MaxBlocksPerHost),
		AutoAllocateBlocks: r.Spec.AutoAllocateBlocks == nil || *r.Spec.AutoAllocateBlocks,
	}
	if c.MaxBlocksPerHost < 0 {
		c.MaxBlocksPerHost = 0
	}
	return c, nil
}

// SetConfig writes IPAMConfiguration "default" (compare-and-swap, creating
// it when missing).
func (m *IPAM) SetConfig(ctx context.Context, c Config) error {
	if c.MaxBlocksPerHost < 0 {
		return fmt.Errorf("set IPAM configuration: maxBlocksPerHost must not be negative, got %d", c.MaxBlocksPerHost)
	}
	if c.MaxBlocksPerHost > 1<<31-1 {
		return fmt.Errorf("set IPAM configuration: maxBlocksPerHost %d is too large", c.MaxBlocksPerHost)
	}
	if !c.StrictAffinity && !c.AutoAllocateBlocks {
		// Calico's rule: a node could then never get an address anywhere.
		return errors.New("set IPAM configuration: cannot disable both strictAffinity and autoAllocateBlocks")
	}
	for attempt := range datastoreRetries {
		if err := backoff(ctx, attempt); err != nil {
			return fmt.Errorf("set IPAM configuration: %w", err)
		}
		auto := c.AutoAllocateBlocks
		cur, err := getAs[*v3.IPAMConfiguration](ctx, m.ds, configKey())
		switch {
		case datastore.IsNotFound(err):
			r := &v3.IPAMConfiguration{}
			r.Name = configName
			r.Spec = v3.IPAMConfigurationSpec{StrictAffinity: c.StrictAffinity, MaxBlocksPerHost: int32(c.MaxBlocksPerHost), AutoAllocateBlocks: &auto}
			_, err = m.ds.Create(ctx, r)
			if datastore.IsAlreadyExists(err) {
				continue
			}
		case err != nil:
		default:
			cur.Spec.StrictAffinity = c.StrictAffinity
			cur.Spec.MaxBlocksPerHost = int32(c.MaxBlocksPerHost)
			cur.Spec.AutoAllocateBlocks = &auto
			_, err = m.ds.Update(ctx, cur)
			if datastore.IsConflict(err) || datastore.IsNotFound(err) {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("set IPAM configuration: %w", err)
		}
		return nil
	}
	return fmt.Errorf("set IPAM configuration: %w", ErrTooManyRetries)
}
