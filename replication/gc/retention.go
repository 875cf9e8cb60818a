package gc

import (
	"context"
	"fmt"
	"time"

	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/catalog"
)

// RetentionCatalog is what retention reads and writes (*catalog.Catalog).
type RetentionCatalog interface {
	Caches() ([]catalog.Cache, error)
	ForEachObject(cache nixid.CacheName, fn func(catalog.Object) error) error
	ExpireObjects(ctx context.Context, cache nixid.CacheName, before time.Time, hashes []nixid.StorePathHash) (int, error)
}

// Retention removes from the catalog the objects that were neither pushed
// nor downloaded within their cache's retention period (Attic's
// retention_period; the cache's own, else [garbage-collection]
// default-retention-period; 0 keeps objects for ever). One node runs it,
// the Raft leader, so the cluster proposes each expiry once.
type Retention struct {
	Catalog RetentionCatalog
	// Default is default-retention-period (0: no retention unless a cache
	// sets its own).
	Default time.Duration
	Now     func() time.Time // time.Now when nil
}

// Period is the retention period in force for a cache (0: none).
func (r *Retention) Period(c catalog.Cache) time.Duration {
	if c.RetentionPeriod != nil {
		return time.Duration(*c.RetentionPeriod) * time.Second
	}
	return r.Default
}

// Expire removes every expired object of every cache and reports how many
// went, one command per catalog.MaxObjectsPerCommand expired objects, each
// proposed as the walk finds them (the walk holds no lock meanwhile).
func (r *Retention) Expire(ctx context.Context) (int, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	caches, err := r.Catalog.Caches()
	if err != nil {
		return 0, err
	}
	total := 0
	for _, c := range caches {
		period := r.Period(c)
		if period <= 0 {
			continue
		}
		before := now().Add(-period)
		n, err := r.expireCache(ctx, c.Name, before)
		total += n
		if err != nil {
			return total, fmt.Errorf("gc: retention of cache %s: %w", c.Name, err)
		}
	}
	return total, nil
}

func (r *Retention) expireCache(ctx context.Context, cache nixid.CacheName, before time.Time) (int, error) {
	total := 0
	var batch []nixid.StorePathHash
	propose := func() error {
		n, err := r.Catalog.ExpireObjects(ctx, cache, before, batch)
		total, batch = total+n, nil
		return err
	}
	err := r.Catalog.ForEachObject(cache, func(o catalog.Object) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !o.LastUsed().Before(before) {
			return nil
		}
		if batch = append(batch, o.StorePathHash); len(batch) == catalog.MaxObjectsPerCommand {
			return propose()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = propose()
	}
	return total, err
}
