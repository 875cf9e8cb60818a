package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/eventually"
	"github.com/garret-cache/garret/replication/gc"
)

// orphan stores a manifest that no catalog entry references.
func orphan(t *testing.T, n *Node) chunkstore.ManifestID {
	t.Helper()
	data := make([]byte, 256<<10)
	_, _ = rand.Read(data)
	res, err := n.Store().Ingest(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	id, err := n.Store().PutManifest(res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestSweep_OnlyWithACurrentCatalog: the leader and a follower in touch with
// it sweep; a node cut off from the rest of its cluster (here: the other two
// crashed) skips the sweep and deletes nothing, however old its garbage.
func TestSweep_OnlyWithACurrentCatalog(t *testing.T) {
	const deadVoter = time.Hour // the crashed nodes stay voters: the survivor is cut off
	first := startCluster(t, clusterConfig(t, "eu-1", "eu", nil), deadVoter)
	nodes := []*Node{first}
	for _, name := range []string{"eu-2", "eu-3"} {
		nodes = append(nodes, startCluster(t, clusterConfig(t, name, "eu", []string{first.cluster.GossipAddr()}), deadVoter))
	}
	eventually.True(t, "three voters and a leader everyone knows", func() bool {
		servers, err := first.Catalog().Servers()
		if err != nil {
			return false
		}
		voters := 0
		for _, s := range servers {
			if s.Voter {
				voters++
			}
		}
		for _, n := range nodes {
			if n.Catalog().Leader() == "" {
				return false
			}
		}
		return voters == 3
	})
	var leader, follower *Node
	for _, n := range nodes {
		if n.Catalog().IsLeader() {
			leader = n
		} else if follower == nil {
			follower = n
		}
	}
	if leader == nil || follower == nil {
		t.Fatal("no leader and follower")
	}
	ctx := context.Background()
	for name, n := range map[string]*Node{"leader": leader, "follower": follower} {
		id := orphan(t, n)
		// On a loaded machine the fast test timings can let a leadership
		// change slip in, during which a pass rightly skips; the node in
		// touch with its cluster sweeps once a leader is known again.
		var (
			st  chunkstore.SweepStats
			err error
		)
		eventually.True(t, name+" sweeps with a leader known", func() bool {
			st, err = sweepNode(n, ctx, time.Nanosecond)
			return !errors.Is(err, gc.ErrCatalogNotCurrent)
		})
		if err != nil || st.ManifestsDeleted != 1 {
			t.Fatalf("%s in touch with its cluster: %+v %v; want the orphan swept", name, st, err)
		}
		if _, err := n.Store().Manifest(id); !errors.Is(err, chunkstore.ErrNotFound) {
			t.Fatalf("%s: orphan after the sweep: %v", name, err)
		}
	}

	kept := orphan(t, follower)
	for _, n := range nodes {
		if n != follower {
			n.crash() // no leave: the cluster still counts them
		}
	}
	st, err := sweepNode(follower, ctx, time.Nanosecond)
	if !errors.Is(err, gc.ErrCatalogNotCurrent) || st.ManifestsDeleted+st.ChunksDeleted != 0 {
		t.Fatalf("cut-off node: %+v %v; want gc.ErrCatalogNotCurrent and nothing deleted", st, err)
	}
	if _, err := follower.Store().Manifest(kept); err != nil {
		t.Fatalf("the cut-off node's orphan: %v", err)
	}
}

// TestCollector_RefusesAClusterDataDir: the offline collector cannot know
// what the cluster committed since a node stopped, so it refuses the data
// dir of a cluster node, by its config or by its members.json.
func TestCollector_RefusesAClusterDataDir(t *testing.T) {
	cfg := clusterConfig(t, "eu-1", "eu", nil)
	n, err := start(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err = OpenCollector(Config{Server: cfg})
	if !errors.Is(err, ErrClusterDataDir) || !strings.Contains(err.Error(), "[cluster] gossip-listen or join") {
		t.Fatalf("collector on a cluster node's data dir: %v", err)
	}

	lone := testConfig(t, t.TempDir(), "127.0.0.1:0")
	n, err = start(t, lone)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := OpenCollector(Config{Server: lone})
	if err != nil {
		t.Fatalf("collector on a lone node's data dir: %v", err)
	}
	c.Close()
	// Once in a cluster, always in one, as far as its members.json knows.
	book := `{"12D3KooWExample":"10.0.0.2:7946"}`
	if err := os.WriteFile(filepath.Join(lone.DataDir, "members.json"), []byte(book), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = OpenCollector(Config{Server: lone})
	if !errors.Is(err, ErrClusterDataDir) || !strings.Contains(err.Error(), "members.json lists 1 other members") {
		t.Fatalf("collector on a data dir whose members.json lists another node: %v", err)
	}
}
