package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/garret-cache/garret/internal/nixid"
)

func entry(t *testing.T, cmds ...command) []byte {
	t.Helper()
	var raws [][]byte
	for _, c := range cmds {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, b)
	}
	return encodeBatch(raws)
}

func ops(chs []Change) []string {
	var out []string
	for _, c := range chs {
		out = append(out, string(c.Op)+":"+string(c.Cache)+":"+string(c.Hash)+c.Name)
	}
	return out
}

// TestChanges_OrderAndResume: puts, file puts, deletions (only of objects
// that existed) and cache destructions are recorded in log order, each with
// its cursor; a reader resumes after any cursor and pages by limit.
func TestChanges_OrderAndResume(t *testing.T) {
	f := memFSM(t)
	c := &Catalog{fsm: f}
	start := c.ChangesHead()
	o1, o2 := object("a", 1), object("a", 2)
	o2.Upload = &UploadedNAR{URL: "nar/x.nar.xz", Compression: "xz", File: [32]byte{9}}
	applyEntry(f, entry(t, cmdOf(&createCache{Cache: &Cache{Name: "a"}}), cmdOf(&putObject{Object: &o1})))
	applyEntry(f, entry(t, cmdOf(&putObject{Object: &o2}), cmdOf(&putFile{File: &File{Cache: "a", Name: "log/x", Manifest: [32]byte{5}}})))
	applyEntry(f, entry(t, cmdOf(&deleteObjects{Name: "a", Hashes: []nixid.StorePathHash{hashOf(1), hashOf(99)}})))
	applyEntry(f, entry(t, cmdOf(&destroyCache{Name: "a"})))

	if _, _, err := c.Changes(Cursor{}, 100); !errors.Is(err, ErrCursorTooOld) {
		t.Fatalf("the zero cursor (not a head taken before a scan): %v", err)
	}
	all, last, err := c.Changes(start, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"put:a:" + string(hashOf(1)), "put:a:" + string(hashOf(2)), "file:a:log/x", "delete:a:" + string(hashOf(1)), "destroy:a:"}
	if !reflect.DeepEqual(ops(all), want) {
		t.Fatalf("changes %v, want %v", ops(all), want)
	}
	if all[0].Cursor != (Cursor{Index: 1, Pos: 0}) || all[2].Cursor != (Cursor{Index: 2, Pos: 1}) || last != all[4].Cursor {
		t.Fatalf("cursors %+v … last %+v", all, last)
	}
	if all[0].Manifest != o1.Manifest || all[1].File != o2.Upload.File || all[2].Manifest != ([32]byte{5}) {
		t.Fatalf("manifests not recorded: %+v", all[:3])
	}
	page, cur, err := c.Changes(all[0].Cursor, 2)
	if err != nil || !reflect.DeepEqual(ops(page), want[1:3]) || cur != all[2].Cursor {
		t.Fatalf("resume after the first: %v %+v %v", ops(page), cur, err)
	}
	none, cur, err := c.Changes(last, 10)
	if err != nil || len(none) != 0 || cur != last {
		t.Fatalf("after the last: %v %+v %v", none, cur, err)
	}
}

// TestChanges_Trim: records older than ChangeWindow indexes go, at indexes
// that are multiples of 1024 (a rule of the index, the same on every
// replica); a cursor before the horizon gets ErrCursorTooOld, the head
// taken just before it does not.
func TestChanges_Trim(t *testing.T) {
	f := memFSM(t)
	c := &Catalog{fsm: f}
	o1, o2 := object("a", 1), object("a", 2)
	apply := func(index uint64, data []byte) {
		f.Apply(&raft.Log{Type: raft.LogCommand, Index: index, Data: data})
	}
	apply(9, entry(t, cmdOf(&createCache{Cache: &Cache{Name: "a"}})))
	early := c.ChangesHead()
	apply(10, entry(t, cmdOf(&putObject{Object: &o1})))
	apply(ChangeWindow+1000, entry(t, cmdOf(&putObject{Object: &o2}))) // not a multiple of 1024: no trim
	if chs, _, err := c.Changes(early, 10); err != nil || len(chs) != 2 {
		t.Fatalf("before the trim: %v %v", ops(chs), err)
	}
	apply(ChangeWindow+2048, entry(t, cmdOf(&revokeToken{JTI: "j"})))
	if _, _, err := c.Changes(early, 10); !errors.Is(err, ErrCursorTooOld) {
		t.Fatalf("a cursor behind the horizon: %v", err)
	}
	if h, err := c.ChangesHorizon(); err != nil || h != 2048 {
		t.Fatalf("horizon %d, %v", h, err)
	}
	for _, ok := range []Cursor{{Index: 2048}, {Index: 2047, Pos: math.MaxUint32}} {
		chs, _, err := c.Changes(ok, 10)
		if err != nil || len(chs) != 1 || chs[0].Hash != hashOf(2) {
			t.Fatalf("after the horizon, from %+v: %v %v", ok, ops(chs), err)
		}
	}
	if _, _, err := c.Changes(Cursor{Index: 2047, Pos: 3}, 10); !errors.Is(err, ErrCursorTooOld) {
		t.Fatalf("a cursor inside the trimmed entry: %v", err)
	}
}

// TestChanges_UpgradedState: a state that applied entries before the change
// log existed starts its horizon after them: a cursor from before cannot
// pass for complete, a head taken after the upgrade can.
func TestChanges_UpgradedState(t *testing.T) {
	f := memFSM(t)
	c := &Catalog{fsm: f}
	f.applied.Store(41) // applied by an older version, which recorded nothing
	head := c.ChangesHead()
	o := object("a", 1)
	applyEntry(f, entry(t, cmdOf(&createCache{Cache: &Cache{Name: "a"}}), cmdOf(&putObject{Object: &o})))
	if _, _, err := c.Changes(Cursor{Index: 10}, 10); !errors.Is(err, ErrCursorTooOld) {
		t.Fatalf("a cursor from before the upgrade: %v", err)
	}
	if chs, _, err := c.Changes(head, 10); err != nil || len(chs) != 1 {
		t.Fatalf("from the head after the upgrade: %v %v", ops(chs), err)
	}
}

// TestWaitChanges: an entry without changes does not wake the waiter, one
// with a change does; its context ends the wait.
func TestWaitChanges(t *testing.T) {
	f := memFSM(t)
	c := &Catalog{fsm: f, stop: make(chan struct{})}
	head := c.ChangesHead()
	done := make(chan error, 1)
	go func() { done <- c.WaitChanges(context.Background(), head) }()
	applyEntry(f, entry(t, cmdOf(&createCache{Cache: &Cache{Name: "a"}})))
	select {
	case err := <-done:
		t.Fatalf("woken by an entry without changes: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	o := object("a", 1)
	applyEntry(f, entry(t, cmdOf(&putObject{Object: &o})))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not woken by a change")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.WaitChanges(ctx, c.ChangesHead()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a wait with nothing coming: %v", err)
	}
}

// TestChanges_SnapshotAndReplicas: every replica records the same changes,
// and a snapshot carries them.
func TestChanges_SnapshotAndReplicas(t *testing.T) {
	nodes, leader := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := leader.ChangesHead()
	if err := leader.CreateCache(ctx, Cache{Name: "s", StoreDir: "/nix/store"}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := leader.PutObject(ctx, object("s", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := leader.DeleteObjects(ctx, "s", []nixid.StorePathHash{hashOf(3)}); err != nil {
		t.Fatal(err)
	}
	want, _, err := leader.Changes(start, 100)
	if err != nil || len(want) != 6 {
		t.Fatalf("leader's changes: %v %v", ops(want), err)
	}
	for _, n := range nodes {
		if err := n.cat.WaitApplied(ctx, leader.AppliedIndex()); err != nil {
			t.Fatal(err)
		}
		got, _, err := n.cat.Changes(start, 100)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("a replica's changes differ: %v, %v", ops(got), err)
		}
	}
	restored := &Catalog{fsm: restoredCopy(t, leader)}
	if got, _, err := restored.Changes(start, 100); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after a snapshot restore: %v, %v", ops(got), err)
	}
}

// TestWaitApplied: a waiter blocks until the entry is applied here, wakes as
// soon as it is, and gives up with its context.
func TestWaitApplied(t *testing.T) {
	n := startNode(t, t.TempDir(), true)
	waitLeader(t, n.cat)
	next := n.cat.AppliedIndex() + 1
	done := make(chan error, 1)
	go func() { done <- n.cat.WaitApplied(context.Background(), next) }()
	select {
	case err := <-done:
		t.Fatalf("returned before the entry was applied: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	start := time.Now()
	if err := n.cat.CreateCache(context.Background(), Cache{Name: "w", StoreDir: "/nix/store"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter was not woken")
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("woken after %v", took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := n.cat.WaitApplied(ctx, next+1000); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a wait for an entry that never comes: %v", err)
	}
}
