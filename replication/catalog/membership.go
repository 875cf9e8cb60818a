package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// The narrow membership API: the cluster controller (replication/cluster)
// reads the Raft configuration and changes it through these methods only;
// nothing outside this package holds the *raft.Raft.

// Server is one member of the Raft configuration.
type Server struct {
	ID    string // the node's libp2p peer ID
	Voter bool   // false: a non-voter (it replicates but does not vote)
}

// changeTimeout bounds one configuration change on the leader.
const changeTimeout = 10 * time.Second

// Servers lists the Raft configuration as this node knows it.
func (c *Catalog) Servers() ([]Server, error) {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("catalog: configuration: %w", err)
	}
	cfg := f.Configuration().Servers
	out := make([]Server, len(cfg))
	for i, s := range cfg {
		out[i] = Server{ID: string(s.ID), Voter: s.Suffrage == raft.Voter}
	}
	return out, nil
}

// Leader is the ID of the leader this node knows, or "".
func (c *Catalog) Leader() string {
	_, id := c.raft.LeaderWithID()
	return string(id)
}

// NodeID is this node's Raft server ID.
func (c *Catalog) NodeID() string { return c.cfg.NodeID }

// freshSnapshotFor takes a snapshot before a server not yet in the
// configuration is added, when the log has grown Config.JoinSnapshotGap
// entries past the latest one. A
// new server starts from the leader's latest snapshot, then replays every
// entry after it; Raft snapshots only every SnapshotInterval past
// SnapshotThreshold entries, so after a burst of writes that replay can be
// tens of thousands of entries (at 10⁶ paths: 20 000 entries, a minute),
// where installing a fresh snapshot takes seconds. Failing to take one only
// costs that time, so it is logged, not returned.
//
// Raft keeps TrailingLogs (10240) entries behind a snapshot, and sends a new
// server entries rather than the snapshot while its log still holds them:
// a catalog of 3·10⁵ paths (9600 entries) was replayed entry by entry, 43 s
// instead of 2. So this snapshot keeps only half of JoinSnapshotGap behind
// it (1024 entries: enough for a follower seconds behind to catch up from
// the log), and the configured number is back once it is taken.
func (c *Catalog) freshSnapshotFor(id string) {
	if c.raft.State() != raft.Leader || c.cfg.JoinSnapshotGap == 0 {
		return
	}
	if servers, err := c.Servers(); err != nil || slices.ContainsFunc(servers, func(s Server) bool { return s.ID == id }) {
		return
	}
	last, err := strconv.ParseUint(c.raft.Stats()["last_snapshot_index"], 10, 64)
	if err != nil || c.raft.LastIndex() < last+c.cfg.JoinSnapshotGap {
		return
	}
	start := time.Now()
	rc := c.raft.ReloadableConfig()
	if trailing := c.cfg.JoinSnapshotGap / 2; rc.TrailingLogs > trailing {
		short := rc
		short.TrailingLogs = trailing
		if err := c.raft.ReloadConfig(short); err == nil {
			defer func() {
				rc.TrailingLogs = c.cfg.TrailingLogs
				if err := c.raft.ReloadConfig(rc); err != nil {
					c.log.Warn("restoring TrailingLogs after a join snapshot failed", "err", err)
				}
			}()
		}
	}
	if err := c.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		c.log.Warn("a snapshot for a joining node failed; it replays the log instead", "node", id, "err", err)
		return
	}
	c.log.Info("took a snapshot for a joining node", "node", id, "entries_since_the_last", c.raft.LastIndex()-last,
		"took", time.Since(start).Round(time.Millisecond))
}

// AddVoter adds id as a voter, or promotes it if it is a non-voter; the
// leader only (ErrNotLeader otherwise).
func (c *Catalog) AddVoter(id string) error {
	c.freshSnapshotFor(id)
	return c.change(func() raft.IndexFuture {
		return c.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(id), 0, changeTimeout)
	})
}

// AddNonvoter adds id as a non-voter; the leader only.
func (c *Catalog) AddNonvoter(id string) error {
	c.freshSnapshotFor(id)
	return c.change(func() raft.IndexFuture {
		return c.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(id), 0, changeTimeout)
	})
}

// DemoteVoter makes the voter id a non-voter; the leader only.
func (c *Catalog) DemoteVoter(id string) error {
	return c.change(func() raft.IndexFuture { return c.raft.DemoteVoter(raft.ServerID(id), 0, changeTimeout) })
}

func (c *Catalog) change(f func() raft.IndexFuture) error {
	if c.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	if err := f().Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return fmt.Errorf("catalog: configuration change: %w", err)
	}
	return nil
}

// ConfirmCurrent confirms that this node's state holds every entry the
// cluster had committed when it was called, so that a node cut off from its
// cluster never acts (sweeps chunks, say) on a stale catalog. The leader
// asks a quorum whether it still leads (a lone node is its own quorum) and
// waits until it has applied all it committed; a follower asks the leader it
// knows for the leader's commit index, directly and now (ProgressProtocol),
// and waits until it has applied that far. ctx bounds the whole check.
func (c *Catalog) ConfirmCurrent(ctx context.Context) error {
	if c.raft.State() == raft.Leader {
		timeout := changeTimeout
		if d, ok := ctx.Deadline(); ok {
			timeout = time.Until(d)
		}
		if err := c.raft.VerifyLeader().Error(); err != nil {
			return fmt.Errorf("a quorum did not confirm this node as the leader: %w", err)
		}
		if err := c.raft.Barrier(timeout).Error(); err != nil {
			return fmt.Errorf("applying the committed entries: %w", err)
		}
		return nil
	}
	leader := c.Leader()
	if leader == "" {
		return errors.New("no leader known (this node may be cut off from the majority)")
	}
	st, err := c.QueryProgress(ctx, leader)
	if err != nil {
		return fmt.Errorf("the leader %s did not answer: %w", leader, err)
	}
	if st.State != "leader" {
		return fmt.Errorf("%s, believed to lead, is %s", leader, st.State)
	}
	// Raft's applied index, not the FSM's: the leader's commit index
	// counts configuration and no-op entries, which the FSM never sees.
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for c.raft.AppliedIndex() < st.CommitIndex {
		select {
		case <-ctx.Done():
			return fmt.Errorf("applied %d of the leader's %d committed entries: %w", c.raft.AppliedIndex(), st.CommitIndex, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
