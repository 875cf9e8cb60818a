package catalog

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestCatalog_WritesHeldDuringElection: the leader dies; writes made on a
// follower meanwhile wait for the new leader instead of failing. Then a
// second node dies: the last one cannot reach a majority and fails writes
// after a probe of the voters, well before HoldTimeout.
func TestCatalog_WritesHeldDuringElection(t *testing.T) {
	nodes, leader := startCluster(t, 3)
	for _, n := range nodes {
		n.cat.serveOn(n.host)
	}
	ctx := context.Background()
	if err := leader.CreateCache(ctx, Cache{Name: "held"}); err != nil {
		t.Fatal(err)
	}
	// Both followers must hold the configuration before the leader dies:
	// the cache's entry commits with one of them, and a follower that has
	// not yet received the bootstrap configuration knows no voters at all.
	eventually(t, "every node to have the cache", func() bool {
		for _, n := range nodes {
			if _, err := n.cat.Cache("held"); err != nil {
				return false
			}
		}
		return true
	})
	var followers []*testNode
	dead := leader.cfg.NodeID
	for _, n := range nodes {
		if n.cat == leader {
			n.stop() // like kill -9 for the others: no leave, no handover
		} else {
			followers = append(followers, n)
		}
	}
	// An idempotent write is held (and sent again) even if the dead leader
	// may have received it; one that must not apply twice is held when it
	// finds no leader, which is most of an election.
	start := time.Now()
	errs := make(chan error, 2)
	go func() { errs <- followers[0].cat.PutObject(ctx, object("held", 1)) }()
	eventually(t, "the followers to notice the leader is gone", func() bool {
		_, id := followers[1].cat.raft.LeaderWithID()
		return string(id) != dead // no leader yet, or already the new one
	})
	go func() { errs <- followers[1].cat.CreateCache(ctx, Cache{Name: "during-election"}) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a write during the election failed after %v: %v", time.Since(start), err)
		}
	}
	t.Logf("writes made while the leader was dead succeeded after %v", time.Since(start).Round(time.Millisecond))
	if _, err := followers[0].cat.Object("held", hashOf(1)); err != nil {
		t.Fatal(err)
	}

	// One of three voters left: no election can succeed.
	var last *testNode
	for _, n := range followers {
		if n.cat.IsLeader() {
			n.stop()
		} else {
			last = n
		}
	}
	start = time.Now()
	err := last.cat.PutObject(ctx, object("held", 2))
	took := time.Since(start)
	if !errors.Is(err, ErrNotLeader) || !strings.Contains(err.Error(), "cut off from the majority") {
		t.Fatalf("a write on a node cut off from the majority: %v", err)
	}
	if took >= last.cat.cfg.HoldTimeout {
		t.Fatalf("the cut-off node failed the write after %v, not faster than HoldTimeout (%v)", took, last.cat.cfg.HoldTimeout)
	}
	t.Logf("cut off from the majority: 503 after %v (%v)", took.Round(time.Millisecond), err)
}
