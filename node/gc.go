package node

import (
	"context"
	"log/slog"
	"time"

	"github.com/garret-cache/garret/chunkstore"
)

// DefaultSweepGrace is Config.SweepGrace's default, for a node's own sweep
// and for the offline Collector alike: longer than the longest upload and
// the staging TTL (1 h).
const DefaultSweepGrace = 6 * time.Hour

// Sweep deletes local chunks and manifests that no catalog object or file
// references and that are older than grace. Liveness is recomputed from the
// catalog each time: there are no reference counts for a crash to leak.
func (n *Node) Sweep(ctx context.Context, grace time.Duration) (chunkstore.SweepStats, error) {
	return sweep(ctx, n.store, n.catalog.ForEachManifest, grace)
}

// sweep runs one pass of the store's sweep against the manifest set that
// forEach visits.
func sweep(ctx context.Context, store *chunkstore.Store, forEach func(func(chunkstore.ManifestID) error) error, grace time.Duration) (chunkstore.SweepStats, error) {
	live := make(map[chunkstore.ManifestID]struct{})
	if err := forEach(func(id chunkstore.ManifestID) error {
		live[id] = struct{}{}
		return nil
	}); err != nil {
		return chunkstore.SweepStats{}, err
	}
	return store.Sweep(ctx, func(id chunkstore.ManifestID) bool {
		_, ok := live[id]
		return ok
	}, grace)
}

func (n *Node) gcLoop(ctx context.Context, every time.Duration) {
	defer n.wg.Done()
	sweepEvery(ctx, every, func(ctx context.Context) (chunkstore.SweepStats, error) {
		return n.Sweep(ctx, n.cfg.SweepGrace)
	}, n.log)
}

// sweepEvery runs pass every interval until ctx is done, logging each result.
func sweepEvery(ctx context.Context, every time.Duration, pass func(context.Context) (chunkstore.SweepStats, error), log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			st, err := pass(ctx)
			logSweep(log, st, err)
		}
	}
}

func logSweep(log *slog.Logger, st chunkstore.SweepStats, err error) {
	if err != nil {
		log.Warn("gc sweep failed", "err", err)
		return
	}
	log.Info("gc sweep", "manifests_deleted", st.ManifestsDeleted, "chunks_deleted", st.ChunksDeleted, "bytes_freed", st.BytesFreed)
}
