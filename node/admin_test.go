package node

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/internal/eventually"
)

// adminPost sends an admin request to n's HTTP API with a cluster-admin token.
func adminPost(t *testing.T, n *Node, path string, in any) (int, []byte) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	return apiDo(t, n, "POST", path, body, nil, token.MintOptions{Subject: "admin", Validity: time.Hour, ClusterAdmin: true})
}

// apiDo sends a request to n's HTTP API with a token minted from o.
func apiDo(t *testing.T, n *Node, method, path string, body io.Reader, hdr map[string]string, o token.MintOptions) (int, []byte) {
	t.Helper()
	auth, err := TokenAuthority(n.cfg.Server)
	if err != nil {
		t.Fatal(err)
	}
	o.Now = time.Now()
	c, err := token.NewClaims(o)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(method, n.URL()+strings.TrimPrefix(path, "/"), body)
	req.Header.Set("Authorization", "Bearer "+tok)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func wantError(t *testing.T, what string, st int, b []byte, status int, text string) {
	t.Helper()
	var e v1.ErrorResponse
	if json.Unmarshal(b, &e) != nil || st != status || e.Code != status || !strings.Contains(e.Message, text) {
		t.Fatalf("%s: %d %s (want %d containing %q)", what, st, b, status, text)
	}
}

// TestCluster_AdminJoinRemoveLeave: garret cluster join, remove and leave
// against real in-process nodes.
func TestCluster_AdminJoinRemoveLeave(t *testing.T) {
	const deadAfter = time.Minute // the admin removes the crashed node, not the reconciler
	first := startCluster(t, clusterConfig(t, "eu-1", "eu", nil), deadAfter)
	seed := first.cluster.GossipAddr()

	// A node with gossip but no join waits, unbootstrapped, to be joined by an admin.
	cfg := clusterConfig(t, "us-1", "us", nil)
	no := false
	cfg.Cluster.Bootstrap = &no
	second := startCluster(t, cfg, deadAfter)
	var third *Node
	ids := map[*Node]string{}
	outer := t
	step(t, "join by an admin", func(t *testing.T) {
		st, b := adminPost(t, second, "_api/v1/cluster/join", v1.ClusterJoinRequest{Addrs: []string{"127.0.0.1:1"}})
		wantError(t, "join an address nobody listens on", st, b, 400, "could be reached")
		st, b = adminPost(t, second, "_api/v1/cluster/join", v1.ClusterJoinRequest{Addrs: []string{seed}})
		var join v1.ClusterJoinResponse
		if st != 200 || json.Unmarshal(b, &join) != nil || join.Contacted != 1 {
			t.Fatalf("join: %d %s", st, b)
		}
		third = startCluster(outer, clusterConfig(outer, "us-2", "us", []string{seed}), deadAfter) // lives past this step
		for _, n := range []*Node{first, second, third} {
			ids[n] = n.host.ID().String()
		}
		eventually.True(t, "three voters after the admin's join", func() bool {
			conf := raftConfig(first)
			return len(conf) == 3 && conf[ids[second]] && conf[ids[third]]
		})
		eventually.True(t, "a leader known to the second node", func() bool {
			return second.Catalog().Leader() != ""
		})
	})

	step(t, "a node without gossip can neither join nor leave", func(t *testing.T) {
		lone, err := start(t, testConfig(t, t.TempDir(), "127.0.0.1:0"))
		if err != nil {
			t.Fatal(err)
		}
		defer lone.Shutdown(t.Context())
		st, b := adminPost(t, lone, "_api/v1/cluster/join", v1.ClusterJoinRequest{Addrs: []string{seed}})
		wantError(t, "join without gossip", st, b, 400, "set [cluster] gossip-listen")
		st, b = adminPost(t, lone, "_api/v1/cluster/leave", nil)
		wantError(t, "leave without gossip", st, b, 400, "not in a cluster")
	})

	step(t, "remove refuses an unknown node and the leader", func(t *testing.T) {
		st, b := adminPost(t, second, "_api/v1/cluster/remove", v1.ClusterRemoveRequest{Node: "nope"})
		wantError(t, "remove an unknown node", st, b, 404, `no node "nope"`)
		// The leader is refused. Leadership can move under load with test
		// timings; a removal that succeeded is a failure only if the removed
		// node still leads.
		for attempt := 1; ; attempt++ {
			var leader *Node
			for _, n := range []*Node{first, second, third} {
				if n.Catalog().IsLeader() {
					leader = n
				}
			}
			if leader == nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			st, b = adminPost(t, second, "_api/v1/cluster/remove", v1.ClusterRemoveRequest{Node: leader.cfg.Server.Cluster.NodeName})
			if st != 200 {
				wantError(t, "remove the leader", st, b, 400, "garret cluster leave")
				break
			}
			if leader.Catalog().IsLeader() || attempt == 3 {
				t.Fatalf("the leader was removed: %s", b)
			}
			eventually.True(t, "the former leader added back", func() bool { return raftConfig(second)[ids[leader]] })
		}
	})

	step(t, "remove of a live node, which the leader adds back", func(t *testing.T) {
		st, b := adminPost(t, second, "_api/v1/cluster/remove", v1.ClusterRemoveRequest{Node: ids[third]})
		var rm v1.ClusterRemoveResponse
		if st != 200 || json.Unmarshal(b, &rm) != nil || rm.Node != "us-2" || !rm.StillAlive || !strings.Contains(rm.Message, "add it again") {
			t.Fatalf("remove a live node: %d %s", st, b)
		}
		eventually.True(t, "the live node added back", func() bool { return raftConfig(first)[ids[third]] })
	})

	step(t, "remove of a crashed node, for good", func(t *testing.T) {
		var rm v1.ClusterRemoveResponse
		third.crash()
		eventually.True(t, "gossip to declare the crashed node dead", func() bool { return !alive(first, ids[third]) && !alive(second, ids[third]) })
		st, b := adminPost(t, second, "_api/v1/cluster/remove", v1.ClusterRemoveRequest{Node: "us-2"})
		if st != 200 || json.Unmarshal(b, &rm) != nil || rm.PeerID != ids[third] || rm.StillAlive {
			t.Fatalf("remove a dead node: %d %s", st, b)
		}
		if _, still := raftConfig(first)[ids[third]]; still {
			t.Fatal("the removed node is still in the Raft configuration")
		}
		st, b = adminPost(t, second, "_api/v1/cluster/remove", v1.ClusterRemoveRequest{Node: ids[third]})
		wantError(t, "remove it again", st, b, 404, "")
	})

	// Answered first, then Done is closed; garretd's Shutdown then leaves Raft.
	step(t, "leave", func(t *testing.T) {
		st, b := adminPost(t, second, "_api/v1/cluster/leave", nil)
		var leave v1.ClusterLeaveResponse
		if st != 200 || json.Unmarshal(b, &leave) != nil || leave.Node != "us-1" {
			t.Fatalf("leave: %d %s", st, b)
		}
		select {
		case <-second.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done not closed after leave")
		}
		stoppedByTest.Store(second, true)
		if err := second.Shutdown(t.Context()); err != nil {
			t.Fatalf("shutdown after leave: %v", err)
		}
		if conf := raftConfig(first); len(conf) != 1 || !conf[ids[first]] {
			t.Fatalf("configuration after the leave: %v", conf)
		}
	})
}

// TestCluster_AdminJoinOfAnotherClustersNode: `garret cluster join` on a node
// that bootstrapped its own catalog says plainly that it cannot enter.
func TestCluster_AdminJoinOfAnotherClustersNode(t *testing.T) {
	first := startCluster(t, clusterConfig(t, "eu-1", "eu", nil), time.Minute)
	loner := startCluster(t, clusterConfig(t, "loner", "us", nil), time.Minute)
	eventually.True(t, "the loner's own leader", func() bool { return loner.catalog.IsLeader() && loner.catalog.ClusterID() != "" })
	st, b := adminPost(t, loner, "_api/v1/cluster/join", v1.ClusterJoinRequest{Addrs: []string{first.cluster.GossipAddr()}})
	wantError(t, "join from a node of another cluster", st, b, 400, "another cluster")
	if servers, err := first.Catalog().Servers(); err != nil || len(servers) != 1 {
		t.Fatalf("the other cluster's node entered Raft: %+v %v", servers, err)
	}
}

// alive reports whether n's gossip shows the node id now.
func alive(n *Node, id string) bool {
	for _, m := range n.cluster.Members() {
		if m.Meta.PeerID == id {
			return true
		}
	}
	return false
}
