package catalog

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestCatalog_PowerLossKeepsEveryCommittedEntry: a power loss takes the
// state back to its last sync (pebble on a crashable in-memory file
// system). Nothing acknowledged may be lost, including what a snapshot
// covers after Raft compacted the log behind it (TrailingLogs 1 here): the
// state must be durable up to the snapshot, and entries after it are
// applied again from the log. (With NoSync commits and no sync before the
// snapshot, objects 1 and 20 are lost; see fsm.ApplyBatch.)
func TestCatalog_PowerLossKeepsEveryCommittedEntry(t *testing.T) {
	dir := t.TempDir()
	fs := vfs.NewCrashableMem()
	config := func(fs vfs.FS) func(*Config) {
		return func(c *Config) { c.stateFS, c.TrailingLogs = fs, 1 }
	}
	n := startNodeConfig(t, dir, true, Deps{}, config(fs))
	waitLeader(t, n.cat)
	ctx := context.Background()
	if err := n.cat.CreateCache(ctx, Cache{Name: "p"}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := n.cat.PutObject(ctx, object("p", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.cat.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	snapIndex := n.cat.AppliedIndex()
	for i := range 5 {
		if err := n.cat.PutObject(ctx, object("p", 50+i)); err != nil {
			t.Fatal(err)
		}
	}
	before := n.cat.AppliedIndex()
	if first, err := n.cat.wal.FirstIndex(); err != nil || first+1 < snapIndex {
		t.Fatalf("the snapshot did not compact the log: first index %d (snapshot at %d), %v", first, snapIndex, err)
	}

	// The power goes: the state keeps only what it synced.
	lost := fs.CrashClone(vfs.CrashCloneCfg{})
	n.stop()
	probe, err := openStateOn(filepath.Join(dir, "catalog", "fsm"), quiet, lost)
	if err != nil {
		t.Fatal(err)
	}
	synced, err := appliedIndex(probe.db)
	_ = probe.close()
	if err != nil {
		t.Fatal(err)
	}
	if synced < snapIndex {
		t.Fatalf("the state synced up to %d, before the snapshot's %d", synced, snapIndex)
	}

	n2 := startNodeConfig(t, dir, true, Deps{}, config(lost))
	waitLeader(t, n2.cat)
	eventually(t, "the log's entries applied again", func() bool { return n2.cat.AppliedIndex() >= before })
	for _, i := range []int{1, 20, 50, 54} { // before and after the snapshot
		if _, err := n2.cat.Object("p", hashOf(i)); err != nil {
			t.Fatalf("object %d after the power loss: %v", i, err)
		}
	}
	if cs, err := n2.cat.Caches(); err != nil || len(cs) != 1 {
		t.Fatalf("caches %v, %v", cs, err)
	}
}
