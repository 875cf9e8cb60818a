package catalog

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

func createEntry(name string) []byte {
	return []byte("\x01" + `[{"t":1,"cache":{"name":"` + name + `","store_dir":"/nix/store"}}]`)
}

// TestFSM_WriteErrorStallsAndRetries: an entry whose batch cannot be
// written (ENOSPC) neither panics nor is skipped: Apply waits, Ready says
// why, and the entry is applied once the store takes writes again.
func TestFSM_WriteErrorStallsAndRetries(t *testing.T) {
	f := memFSM(t)
	var fails atomic.Int32
	fails.Store(3)
	f.commit = func(b *pebble.Batch) error {
		if fails.Add(-1) >= 0 {
			return syscall.ENOSPC
		}
		return b.Commit(pebble.Sync)
	}
	done := make(chan []result)
	go func() { done <- applyEntry(f, createEntry("a")) }()
	deadline := time.Now().Add(5 * time.Second)
	for f.stalledErr() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(f.stalledErr(), syscall.ENOSPC) {
		t.Fatalf("stalled on %v, want ENOSPC", f.stalledErr())
	}
	select {
	case r := <-done:
		if len(r) != 1 || r[0].err != nil {
			t.Fatalf("results %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the entry was never applied after the store recovered")
	}
	if f.stalledErr() != nil || f.applied.Load() != 1 {
		t.Fatalf("stalled %v, applied %d", f.stalledErr(), f.applied.Load())
	}
	if ok, err := getJSON(f.st.db, cacheKey("a"), nil); !ok || err != nil {
		t.Fatalf("cache a not in the state: %v %v", ok, err)
	}
	if idx, err := appliedIndex(f.st.db); err != nil || idx != 1 {
		t.Fatalf("stored applied index %d, %v", idx, err)
	}
}

// TestFSM_StopWhileStalled: stopping while an entry is unwritten answers
// its proposers with an error, refuses every later entry and leaves the
// stored applied index before it, so the restart applies it again.
func TestFSM_StopWhileStalled(t *testing.T) {
	f := memFSM(t)
	if r := applyEntry(f, createEntry("a")); r[0].err != nil {
		t.Fatal(r[0].err)
	}
	stop := make(chan struct{})
	f.stop = stop
	f.commit = func(*pebble.Batch) error { return syscall.EIO }
	done := make(chan []result)
	go func() { done <- applyEntry(f, createEntry("b")) }()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	var r []result
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Apply did not return after stop")
	}
	if len(r) != 1 || !errors.Is(r[0].err, errStopped) {
		t.Fatalf("results %+v", r)
	}
	f.commit = nil // the disk would work now, but this process must not write past the hole
	res := f.Apply(&raft.Log{Type: raft.LogCommand, Index: 3, Data: createEntry("c")}).(*batchResult)
	if !errors.Is(res.results[0].err, errStopped) {
		t.Fatalf("a later entry after the stop: %+v", res.results)
	}
	if idx, _ := appliedIndex(f.st.db); idx != 1 {
		t.Fatalf("stored applied index %d, want 1", idx)
	}
	if _, err := f.Snapshot(); err == nil {
		t.Fatal("a snapshot of a state with an unwritten entry")
	}
}
