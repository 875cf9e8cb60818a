// Package gc collects a node's garbage: the loop that sweeps the local
// chunk store (chunkstore.Sweep) against the manifests the catalog
// references, on a running node only once the catalog is confirmed current,
// and the same pass over a stopped lone node's data dir (garretd --mode
// garbage-collector[-once]). Retention, which removes objects from the
// catalog, joins it here.
package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/garret-cache/garret/chunkstore"
)

// DefaultGrace is how long an unreferenced chunk or manifest survives
// before a sweep may delete it: longer than the staging TTL (1 h) and than
// any wait between the end of an upload and its catalog commit (uploads in
// progress are held by the chunk store, however long they run).
const DefaultGrace = 6 * time.Hour

// ErrCatalogNotCurrent means a sweep was skipped because this node could
// not confirm that its catalog has everything the cluster committed.
var ErrCatalogNotCurrent = errors.New("gc: sweep skipped: the catalog is not known to be current")

// currentTimeout bounds how long a sweep spends confirming its catalog.
const currentTimeout = 10 * time.Second

// Sweeper sweeps one chunk store against one manifest set.
type Sweeper struct {
	Store *chunkstore.Store
	// Manifests visits every manifest the catalog references.
	Manifests func(func(chunkstore.ManifestID) error) error
	// Current confirms the catalog holds all the cluster committed
	// (catalog.ConfirmCurrent); nil for a stopped lone node's data dir.
	Current func(context.Context) error
	Grace   time.Duration // default DefaultGrace
	Log     *slog.Logger
}

// Sweep deletes local chunks and manifests that no catalog object or file
// references and that are older than the grace period. Liveness is
// recomputed from the catalog each time: there are no reference counts for
// a crash to leak. With Current set it sweeps only with a catalog confirmed
// current, and otherwise fails with ErrCatalogNotCurrent, deleting nothing.
func (s *Sweeper) Sweep(ctx context.Context) (chunkstore.SweepStats, error) {
	if s.Current != nil {
		cctx, cancel := context.WithTimeout(ctx, currentTimeout)
		err := s.Current(cctx)
		cancel()
		if err != nil {
			return chunkstore.SweepStats{}, fmt.Errorf("%w: %v", ErrCatalogNotCurrent, err)
		}
	}
	live := make(map[chunkstore.ManifestID]struct{})
	if err := s.Manifests(func(id chunkstore.ManifestID) error {
		live[id] = struct{}{}
		return nil
	}); err != nil {
		return chunkstore.SweepStats{}, err
	}
	grace := s.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	return s.Store.Sweep(ctx, func(id chunkstore.ManifestID) bool {
		_, ok := live[id]
		return ok
	}, grace)
}

// Run sweeps every interval until ctx is done (at once first, if now),
// logging each pass.
func (s *Sweeper) Run(ctx context.Context, every time.Duration, now bool) {
	if now {
		s.logPass(s.Sweep(ctx))
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.logPass(s.Sweep(ctx))
		}
	}
}

func (s *Sweeper) logPass(st chunkstore.SweepStats, err error) {
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	switch {
	case errors.Is(err, ErrCatalogNotCurrent):
		log.Warn("gc sweep skipped, deleting nothing: the catalog could not be confirmed current", "err", err)
	case err != nil:
		log.Warn("gc sweep failed", "err", err)
	default:
		log.Info("gc sweep", "manifests_deleted", st.ManifestsDeleted, "chunks_deleted", st.ChunksDeleted, "bytes_freed", st.BytesFreed)
	}
}
