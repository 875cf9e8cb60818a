package cluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/garret-cache/garret/internal/eventually"
	"github.com/garret-cache/garret/replication/catalog"
	"github.com/garret-cache/garret/replication/cluster"
	"github.com/garret-cache/garret/replication/cluster/clustertest"
)

// voters is n's Raft configuration: voter or not, by server ID; empty for
// no node (c.Leader() during an election, as voters are added).
func voters(t *testing.T, n *clustertest.Node) map[string]bool {
	t.Helper()
	if n == nil {
		return map[string]bool{}
	}
	servers, err := n.Catalog.Servers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, s := range servers {
		out[s.ID] = s.Voter
	}
	return out
}

// TestController_VotersSpreadOverRegions: four nodes in three regions get
// three voters, one per region, and the fourth is a non-voter; every node
// advertises its command version.
func TestController_VotersSpreadOverRegions(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{}, "eu", "eu", "us", "ap")
	eventually.True(t, "three voters in three regions", func() bool {
		v, regions := voters(t, c.Leader()), map[string]bool{}
		count := 0
		for _, n := range c.Nodes {
			if v[n.ID()] {
				count++
				regions[n.Region] = true
			}
		}
		return count == 3 && len(regions) == 3
	})
	for _, n := range c.Nodes {
		if v := n.Cluster.MinVersion(); v != catalog.CommandVersion {
			t.Fatalf("%s: MinVersion %d, want %d", n.Name, v, catalog.CommandVersion)
		}
	}
}

// TestController_DeadVoterReplaced: a voter that crashes is removed after
// the dead-voter timeout and its vote goes to the live non-voter; writes go
// on.
func TestController_DeadVoterReplaced(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{DeadVoterTimeout: time.Second}, "eu", "eu", "eu", "eu")
	eventually.True(t, "three voters", func() bool {
		n := 0
		for _, v := range voters(t, c.Leader()) {
			if v {
				n++
			}
		}
		return n == 3
	})
	l := c.Leader()
	var victim, standby *clustertest.Node
	v := voters(t, l)
	for _, n := range c.Nodes {
		switch {
		case n == l:
		case v[n.ID()] && victim == nil:
			victim = n
		case !v[n.ID()]:
			standby = n
		}
	}
	victim.Crash()
	eventually.True(t, "the dead voter removed and the standby promoted", func() bool {
		l := c.Leader()
		if l == nil {
			return false
		}
		v := voters(t, l)
		_, stillIn := v[victim.ID()]
		return !stillIn && v[standby.ID()]
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := standby.Catalog.CreateCache(ctx, catalog.Cache{Name: "after", StoreDir: "/nix/store"}); err != nil {
		t.Fatalf("write after the replacement: %v", err)
	}
}

// TestController_RemoveNode: an admin's removal of an unknown node is
// ErrNoSuchNode, of the leader ErrRefused (it must leave instead), and of a
// crashed node works from any node.
func TestController_RemoveNode(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{DeadVoterTimeout: time.Hour}, "eu", "eu", "us")
	l := c.Leader()
	var follower, victim *clustertest.Node
	for _, n := range c.Nodes {
		if n != l {
			if follower == nil {
				follower = n
			} else {
				victim = n
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := follower.Cluster.RemoveNode(ctx, "nope"); !errors.Is(err, cluster.ErrNoSuchNode) {
		t.Fatalf("remove an unknown node: %v", err)
	}
	if _, err := follower.Cluster.RemoveNode(ctx, l.Name); !errors.Is(err, cluster.ErrRefused) {
		t.Fatalf("remove the leader: %v", err)
	}
	victim.Crash()
	eventually.True(t, "gossip to lose the crashed node", func() bool { return len(follower.Cluster.Members()) == 2 })
	// Two live voters of three: removing the dead one keeps the quorum.
	res, err := follower.Cluster.RemoveNode(ctx, victim.Name)
	if err != nil || res.PeerID != victim.ID() || res.StillAlive {
		t.Fatalf("remove the crashed node: %+v, %v", res, err)
	}
	if _, in := voters(t, c.Leader())[victim.ID()]; in {
		t.Fatal("the removed node is still in the Raft configuration")
	}
}
