package catalog

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// TestCatalog_FreshSnapshotForAJoiningNode: when the log has grown past
// JoinSnapshotGap entries since the latest snapshot, the leader takes one
// (and compacts its log behind it, TrailingLogs notwithstanding) before it
// adds a new server, which gets the whole catalog; TrailingLogs is back
// afterwards; a server already in the configuration triggers none.
// (Which way the new server gets the entries is Raft's: here the log is one
// raft-wal segment, and raft-wal still reads entries of its tail segment
// below the first index, so Raft sends them rather than the snapshot. At
// scale the compacted segments are gone and the snapshot is sent: the
// bench's scale phase shows it.)
func TestCatalog_FreshSnapshotForAJoiningNode(t *testing.T) {
	// The log is far shorter than TrailingLogs, as 9600 entries at 3·10⁵
	// paths are than 10240: the join's snapshot still compacts it.
	leader := startNodeConfig(t, t.TempDir(), true, Deps{}, func(c *Config) { c.JoinSnapshotGap, c.TrailingLogs = 32, 10240 })
	waitLeader(t, leader.cat)
	ctx := context.Background()
	if err := leader.cat.CreateCache(ctx, Cache{Name: "j"}); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		if err := leader.cat.PutObject(ctx, object("j", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	lastSnapshot := func() uint64 {
		v, _ := strconv.ParseUint(leader.cat.raft.Stats()["last_snapshot_index"], 10, 64)
		return v
	}
	if lastSnapshot() != 0 {
		t.Fatalf("a snapshot at %d before the join: the test needs none", lastSnapshot())
	}
	written := leader.cat.AppliedIndex()

	joiner := startNode(t, t.TempDir(), false)
	leader.host.Peerstore().AddAddrs(joiner.id, joiner.host.Addrs(), time.Hour)
	joiner.host.Peerstore().AddAddrs(leader.id, leader.host.Addrs(), time.Hour)
	if err := leader.cat.AddNonvoter(joiner.id.String()); err != nil {
		t.Fatal(err)
	}
	if got := lastSnapshot(); got < written {
		t.Fatalf("latest snapshot at %d after the join, entries written up to %d", got, written)
	}
	if first, err := leader.cat.wal.FirstIndex(); err != nil || first <= 1 {
		t.Fatalf("the log was not compacted behind the snapshot: first index %d, %v", first, err)
	}
	if got := leader.cat.raft.ReloadableConfig().TrailingLogs; got != 10240 {
		t.Fatalf("TrailingLogs %d after the join, configured 10240", got)
	}
	eventually(t, "the joiner to have the catalog", func() bool { return joiner.cat.AppliedIndex() >= written })
	if _, err := joiner.cat.Object("j", hashOf(60)); err != nil {
		t.Fatalf("the joiner's catalog: %v", err)
	}

	// Already a server: no new snapshot, however far the log has grown.
	for i := range 40 {
		if err := leader.cat.PutObject(ctx, object("j", 100+i)); err != nil {
			t.Fatal(err)
		}
	}
	before := lastSnapshot()
	if err := leader.cat.AddNonvoter(joiner.id.String()); err != nil {
		t.Fatal(err)
	}
	if lastSnapshot() != before {
		t.Fatal("a snapshot for a server already in the configuration")
	}
}
