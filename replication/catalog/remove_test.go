package catalog

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestCatalog_RemoveServerFromAFollower: a follower has the leader remove
// another node; the leader itself and unknown nodes are refused.
func TestCatalog_RemoveServerFromAFollower(t *testing.T) {
	nodes := make([]*testNode, 3)
	for i := range nodes {
		nodes[i] = startNode(t, t.TempDir(), false)
	}
	var servers []raft.Server
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.host.Peerstore().AddAddrs(b.id, b.host.Addrs(), time.Hour)
			}
		}
		a.cat.serveOn(a.host)
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(a.id.String()), Address: raft.ServerAddress(a.id.String())})
	}
	if err := nodes[0].cat.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	var leader *testNode
	var followers []*testNode
	eventually(t, "a leader known to everyone", func() bool {
		leader, followers = nil, nil
		for _, n := range nodes {
			if _, id := n.cat.raft.LeaderWithID(); id == "" {
				return false
			}
			if n.cat.IsLeader() {
				leader = n
			} else {
				followers = append(followers, n)
			}
		}
		return leader != nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	asker, victim := followers[0], followers[1]
	_, current := asker.cat.raft.LeaderWithID() // leadership may have moved under load
	if err := asker.cat.RemoveServer(ctx, string(current)); !errors.Is(err, ErrRemoveLeader) {
		t.Fatalf("removing the leader: %v", err)
	}
	if err := asker.cat.RemoveServer(ctx, "12D3KooWNoSuchNodeNoSuchNodeNoSuchNodeNoSuchNode"); !errors.Is(err, ErrNoSuchServer) {
		t.Fatalf("removing an unknown node: %v", err)
	}
	if err := leader.cat.RemoveServer(ctx, "unknown"); !errors.Is(err, ErrNoSuchServer) {
		t.Fatalf("removing an unknown node on the leader: %v", err)
	}
	if err := asker.cat.RemoveServer(ctx, victim.id.String()); err != nil {
		t.Fatalf("removing a follower: %v", err)
	}
	f := leader.cat.raft.GetConfiguration()
	if f.Error() != nil || len(f.Configuration().Servers) != 2 {
		t.Fatalf("configuration after the removal: %+v %v", f.Configuration().Servers, f.Error())
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == victim.id.String() {
			t.Fatal("the removed node is still in the configuration")
		}
	}
	if err := asker.cat.CreateCache(ctx, Cache{Name: "after-remove"}); err != nil {
		t.Fatalf("write after the removal: %v", err)
	}
}
