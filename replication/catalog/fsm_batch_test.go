package catalog

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"

	"github.com/garret-cache/garret/internal/nixid"
)

// TestFSM_ApplyBatch: entries Raft commits together are applied in order
// with one synced write; each command log gets its own results, other logs
// nil; entries at or below the applied index are skipped; a command of a
// later entry sees what an earlier entry of the batch wrote.
func TestFSM_ApplyBatch(t *testing.T) {
	f := memFSM(t)
	if r := applyEntry(f, createEntry("a")); r[0].err != nil {
		t.Fatal(r[0].err)
	}
	commits := 0
	f.commit = func(b *pebble.Batch) error { commits++; return b.Commit(pebble.Sync) }
	var hooked []uint64
	f.applyHook = func(i uint64) { hooked = append(hooked, i) }
	logs := []*raft.Log{
		{Type: raft.LogCommand, Index: 1, Data: createEntry("x")}, // applied already
		{Type: raft.LogCommand, Index: 2, Data: createEntry("b")},
		{Type: raft.LogConfiguration, Index: 3},
		{Type: raft.LogCommand, Index: 4, Data: createEntry("b")}, // exists now: the earlier entry counts
		{Type: raft.LogCommand, Index: 5, Data: createEntry("c")},
	}
	out := f.ApplyBatch(logs)
	if len(out) != len(logs) {
		t.Fatalf("%d responses for %d logs", len(out), len(logs))
	}
	if out[0] != nil || out[2] != nil {
		t.Fatalf("responses for a skipped entry and a configuration: %v %v", out[0], out[2])
	}
	res := func(i int) error { return out[i].(*batchResult).results[0].err }
	if res(1) != nil || !errors.Is(res(3), ErrCacheExists) || res(4) != nil {
		t.Fatalf("results %v, %v, %v", res(1), res(3), res(4))
	}
	if commits != 1 {
		t.Fatalf("%d commits for one batch", commits)
	}
	if idx, _ := appliedIndex(f.st.db); idx != 5 || f.applied.Load() != 5 {
		t.Fatalf("applied index %d stored, %d in memory; want 5", idx, f.applied.Load())
	}
	if len(hooked) != 3 || hooked[0] != 2 || hooked[2] != 5 {
		t.Fatalf("apply hook ran for %v", hooked)
	}
	for _, name := range []string{"a", "b", "c"} {
		if ok, err := f.st.get(cacheKey(nixid.CacheName(name)), new(Cache)); err != nil || !ok {
			t.Fatalf("cache %s: %v %v", name, ok, err)
		}
	}
	if ok, _ := f.st.get(cacheKey(nixid.CacheName("x")), new(Cache)); ok {
		t.Fatal("an entry at the applied index was applied again")
	}
	// A batch whose write fails is written whole on the retry, not in part.
	fails := 2
	f.commit = func(b *pebble.Batch) error {
		if fails > 0 {
			fails--
			return errors.New("injected")
		}
		return b.Commit(pebble.Sync)
	}
	out = f.ApplyBatch([]*raft.Log{{Type: raft.LogCommand, Index: 6, Data: createEntry("d")}, {Type: raft.LogCommand, Index: 7, Data: createEntry("e")}})
	if out[0].(*batchResult).results[0].err != nil || out[1].(*batchResult).results[0].err != nil || f.applied.Load() != 7 {
		t.Fatalf("after retries: %v %v, applied %d", out[0], out[1], f.applied.Load())
	}
}
