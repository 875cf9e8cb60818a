package node

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/internal/eventually"
	"github.com/garret-cache/garret/internal/narinfo"
	"github.com/garret-cache/garret/replication/catalog"
)

// createPrivateCache creates cache "hello" (priority 41, private) through n's catalog.
func createPrivateCache(t *testing.T, n *Node) {
	t.Helper()
	key, _ := narinfo.GenerateKeypair("hello")
	eventually.True(t, "the cache", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := n.Catalog().CreateCache(ctx, catalog.Cache{Name: "hello", Keypair: key, StoreDir: "/nix/store", Priority: 41})
		return err == nil || errors.Is(err, catalog.ErrCacheExists)
	})
}

// puller may only pull cache "hello".
var puller = token.MintOptions{Subject: "bob", Validity: time.Hour, Pull: []string{"hello"}}

// TestCluster_CacheConfigListsEveryNode: asked of either node of a real
// two-node cluster by a token that may only pull the cache, the cache config
// lists both nodes (the one asked first) with their regions and
// substituter URLs from gossip; each node's nix-cache-info answers the
// cache's priority plus its own [cluster] priority-offset.
func TestCluster_CacheConfigListsEveryNode(t *testing.T) {
	euCfg := clusterConfig(t, "eu-1", "eu", nil)
	euCfg.Cluster.PriorityOffset = 2
	eu := startCluster(t, euCfg, time.Minute)
	us := startCluster(t, clusterConfig(t, "us-1", "us", []string{eu.cluster.GossipAddr()}), time.Minute)
	createPrivateCache(t, eu)
	entry := map[*Node]v1.CacheNode{
		eu: {Name: "eu-1", Region: "eu", SubstituterEndpoint: eu.URL() + "hello"},
		us: {Name: "us-1", Region: "us", SubstituterEndpoint: us.URL() + "hello"},
	}
	eventually.True(t, "gossip to show both nodes on both, and the cache on us-1", func() bool {
		_, err := us.Catalog().Cache("hello")
		return err == nil && len(eu.cluster.Members()) == 2 && len(us.cluster.Members()) == 2
	})
	for n, other := range map[*Node]*Node{eu: us, us: eu} {
		want := []v1.CacheNode{entry[n], entry[other]}
		st, b := apiDo(t, n, "GET", "/_api/v1/cache-config/hello", nil, nil, puller)
		var cc v1.CacheConfig
		if st != 200 || json.Unmarshal(b, &cc) != nil || !slices.Equal(cc.Nodes, want) || *cc.SubstituterEndpoint != entry[n].SubstituterEndpoint {
			t.Fatalf("%s's cache config: %d %s\nwant garret_nodes %+v", entry[n].Name, st, b, want)
		}
	}
	for n, want := range map[*Node]string{eu: "Priority: 43\n", us: "Priority: 41\n"} {
		if st, b := apiDo(t, n, "GET", "/hello/nix-cache-info", nil, nil, puller); st != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("%s nix-cache-info: %d %s, want %q", n.cfg.Server.Cluster.NodeName, st, b, want)
		}
	}
}

// TestNode_LoneNodeListsNoNodes: a lone node's cache config has no node
// list, so garret use writes its one substituter as it always has.
func TestNode_LoneNodeListsNoNodes(t *testing.T) {
	n, err := start(t, testConfig(t, t.TempDir(), "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	createPrivateCache(t, n)
	st, b := apiDo(t, n, "GET", "/_api/v1/cache-config/hello", nil, nil, puller)
	if st != 200 || strings.Contains(string(b), "garret_nodes") || !strings.Contains(string(b), `"substituter_endpoint":"`+n.URL()+`hello"`) {
		t.Fatalf("lone node's cache config: %d %s", st, b)
	}
}
