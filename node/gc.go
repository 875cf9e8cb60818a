package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"github.com/garret-cache/garret/chunkstore"
)

// DefaultSweepGrace is Config.SweepGrace's default, for a node's own sweep
// and for the offline Collector alike: longer than the staging TTL (1 h)
// and than any wait between the end of an upload and its catalog commit
// (uploads in progress are held by the chunk store, however long they run).
const DefaultSweepGrace = 6 * time.Hour

// ErrCatalogNotCurrent means a sweep was skipped because this node could
// not confirm that its catalog has everything the cluster committed.
var ErrCatalogNotCurrent = errors.New("node: sweep skipped: the catalog is not known to be current")

// currentTimeout bounds how long a sweep spends confirming its catalog.
const currentTimeout = 10 * time.Second

// Sweep deletes local chunks and manifests that no catalog object or file
// references and that are older than grace. Liveness is recomputed from the
// catalog each time: there are no reference counts for a crash to leak. It
// sweeps only with a catalog known to be current (see catalogCurrent), and
// otherwise fails with ErrCatalogNotCurrent and deletes nothing.
func (n *Node) Sweep(ctx context.Context, grace time.Duration) (chunkstore.SweepStats, error) {
	if err := n.catalogCurrent(ctx); err != nil {
		return chunkstore.SweepStats{}, fmt.Errorf("%w: %v", ErrCatalogNotCurrent, err)
	}
	return sweep(ctx, n.store, n.catalog.ForEachManifest, grace)
}

// catalogCurrent confirms that the catalog holds every entry the cluster had
// committed when the sweep began, so that a node cut off from its cluster
// (for longer than the grace period, say) never sweeps chunks that a path
// committed meanwhile references. The leader asks a quorum whether it still
// leads (a lone node is its own quorum) and waits until it has applied all
// it committed; a follower asks the leader it knows for the leader's commit
// index, directly and now, and waits until it has applied that far.
func (n *Node) catalogCurrent(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, currentTimeout)
	defer cancel()
	r := n.catalog.Raft()
	if r.State() == raft.Leader {
		if err := r.VerifyLeader().Error(); err != nil {
			return fmt.Errorf("a quorum did not confirm this node as the leader: %w", err)
		}
		if err := r.Barrier(currentTimeout).Error(); err != nil {
			return fmt.Errorf("applying the committed entries: %w", err)
		}
		return nil
	}
	_, leader := r.LeaderWithID()
	if leader == "" {
		return errors.New("no leader known (this node may be cut off from the majority)")
	}
	st, err := n.queryStatus(ctx, string(leader))
	if err != nil {
		return fmt.Errorf("the leader %s did not answer: %w", leader, err)
	}
	if st.State != "leader" {
		return fmt.Errorf("%s, believed to lead, is %s", leader, st.State)
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for r.AppliedIndex() < st.CommitIndex {
		select {
		case <-ctx.Done():
			return fmt.Errorf("applied %d of the leader's %d committed entries: %w", r.AppliedIndex(), st.CommitIndex, ctx.Err())
		case <-t.C:
		}
	}
	return nil
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
	if errors.Is(err, ErrCatalogNotCurrent) {
		log.Warn("gc sweep skipped, deleting nothing: the catalog could not be confirmed current", "err", err)
		return
	}
	if err != nil {
		log.Warn("gc sweep failed", "err", err)
		return
	}
	log.Info("gc sweep", "manifests_deleted", st.ManifestsDeleted, "chunks_deleted", st.ChunksDeleted, "bytes_freed", st.BytesFreed)
}
