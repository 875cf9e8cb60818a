package catalog

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
)

// TestCatalog_BatchSplitOnBytes queues, at once, more large commands than
// fit one entry: the batcher splits them into entries of at most
// MaxBatchBytes, and every command applies.
func TestCatalog_BatchSplitOnBytes(t *testing.T) {
	n := startNode(t, t.TempDir(), true)
	waitLeader(t, n.cat)
	ctx := context.Background()
	if err := n.cat.CreateCache(ctx, Cache{Name: "big"}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var entries []uint64
	n.cat.fsm.applyHook = func(idx uint64) { mu.Lock(); entries = append(entries, idx); mu.Unlock() }
	// Six commands of ~5 MiB: one entry would hold 30 MiB.
	var ps []proposal
	for i := range 6 {
		o := object("big", 10+i)
		for j := range 5000 {
			o.References = append(o.References, fmt.Sprintf("%s-%d", strings.Repeat("r", 1000), j))
		}
		ps = append(ps, queued(t, cmdOf(&putObject{Object: &o})))
	}
	for _, p := range ps {
		n.cat.proposals <- p
	}
	for i, p := range ps {
		if r := <-p.done; r.err != nil {
			t.Fatalf("command %d: %v", i, r.err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(entries) < 2 {
		t.Fatalf("6 commands of ~5 MiB went into %d log entry", len(entries))
	}
	for _, idx := range entries {
		var l raft.Log
		if err := n.cat.wal.GetLog(idx, &l); err != nil {
			t.Fatal(err)
		}
		if len(l.Data) > MaxBatchBytes {
			t.Errorf("entry %d is %d bytes, more than %d", idx, len(l.Data), MaxBatchBytes)
		}
	}
	for i := range 6 {
		if _, err := n.cat.Object("big", hashOf(10+i)); err != nil {
			t.Fatalf("object %d: %v", i, err)
		}
	}
}
