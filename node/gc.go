package node

import (
	"context"
	"time"

	"github.com/garret-cache/garret/chunkstore"
)

// Sweep deletes local chunks and manifests that no catalog object or file
// references and that are older than grace. Liveness is recomputed from the
// catalog each time: there are no reference counts for a crash to leak.
func (n *Node) Sweep(ctx context.Context, grace time.Duration) (chunkstore.SweepStats, error) {
	live := make(map[chunkstore.ManifestID]struct{})
	if err := n.catalog.ForEachManifest(func(id chunkstore.ManifestID) error {
		live[id] = struct{}{}
		return nil
	}); err != nil {
		return chunkstore.SweepStats{}, err
	}
	return n.store.Sweep(ctx, func(id chunkstore.ManifestID) bool {
		_, ok := live[id]
		return ok
	}, grace)
}

func (n *Node) gcLoop(ctx context.Context, every time.Duration) {
	defer n.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			st, err := n.Sweep(ctx, n.cfg.SweepGrace)
			if err != nil {
				n.log.Warn("gc sweep failed", "err", err)
				continue
			}
			n.log.Info("gc sweep", "manifests_deleted", st.ManifestsDeleted, "chunks_deleted", st.ChunksDeleted, "bytes_freed", st.BytesFreed)
		}
	}
}
