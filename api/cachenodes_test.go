package api

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
)

// TestCacheConfig_NodeList: which nodes the cache config lists for garret
// use, and with which URLs, to a caller that may only pull the cache.
func TestCacheConfig_NodeList(t *testing.T) {
	fc := &fakeCluster{}
	e := newTestEnvDeps(t, DefaultConfig(), Deps{Cluster: fc})
	e.createCache("hello", false)
	e.createCache("open", true)
	puller := e.mint(token.MintOptions{Subject: "bob", Validity: time.Hour, Pull: []string{"hello"}})
	self := e.srv.URL + "/hello" // the endpoint the request reached
	manyNodes := func() []v1.NodeEndpoint {
		out := []v1.NodeEndpoint{{Name: "ap-0", Region: "ap", APIURL: "http://ap-0.example", Self: true}}
		for i := range 100 {
			out = append(out, v1.NodeEndpoint{Name: fmt.Sprintf("eu-%02d", i), Region: "eu", APIURL: fmt.Sprintf("http://eu-%d.example", i)})
		}
		return append(out, v1.NodeEndpoint{Name: "us-1", Region: "us", APIURL: "http://us-1.example"})
	}
	for _, tc := range []struct {
		name  string
		nodes []v1.NodeEndpoint
		want  []v1.CacheNode // nil: no garret_nodes
	}{
		{"this node first, then by region and name",
			[]v1.NodeEndpoint{{Name: "us-2", Region: "us", APIURL: "https://us-2.example/"}, {Name: "eu-1", Region: "eu", APIURL: "https://eu-1.example"},
				{Name: "us-1", Region: "us", APIURL: "https://us-1.example/", Self: true}},
			[]v1.CacheNode{{Name: "us-1", Region: "us", SubstituterEndpoint: "https://us-1.example/hello"},
				{Name: "eu-1", Region: "eu", SubstituterEndpoint: "https://eu-1.example/hello"},
				{Name: "us-2", Region: "us", SubstituterEndpoint: "https://us-2.example/hello"}}},
		{"this node without a dialable URL: the one the request reached; others without one left out",
			[]v1.NodeEndpoint{{Name: "eu-1", Region: "eu", APIURL: "http://[::]:8080/", Self: true}, {Name: "us-1", Region: "us", APIURL: "http://us-1.example:8080/"},
				{Name: "us-2", Region: "us", APIURL: "http://0.0.0.0:8080/"}, {Name: "us-3", Region: "us"}, {Name: "us-4", Region: "us", APIURL: "us-4.example"}},
			[]v1.CacheNode{{Name: "eu-1", Region: "eu", SubstituterEndpoint: self},
				{Name: "us-1", Region: "us", SubstituterEndpoint: "http://us-1.example:8080/hello"}}},
		{"nodes behind one load balancer URL: listed once, so as a lone node",
			[]v1.NodeEndpoint{{Name: "eu-1", Region: "eu", APIURL: "https://cache.example/", Self: true}, {Name: "us-1", Region: "us", APIURL: "https://cache.example/"}},
			nil},
		{"no other node dialable: as a lone node",
			[]v1.NodeEndpoint{{Name: "eu-1", Region: "eu", APIURL: "https://eu-1.example", Self: true}, {Name: "us-1", Region: "us", APIURL: "http://0.0.0.0:8080"}},
			nil},
		{"a lone cluster node", []v1.NodeEndpoint{{Name: "eu-1", Region: "eu", APIURL: "https://eu-1.example", Self: true}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc.nodes = tc.nodes
			st, b := e.do("GET", "/_api/v1/cache-config/hello", puller, nil, nil)
			var cc v1.CacheConfig
			if st != 200 || json.Unmarshal(b, &cc) != nil {
				t.Fatalf("cache-config with a pull token: %d %s", st, b)
			}
			if !slices.Equal(cc.Nodes, tc.want) {
				t.Fatalf("garret_nodes %+v, want %+v", cc.Nodes, tc.want)
			}
		})
	}

	t.Run("a long list is cut to MaxCacheNodes, this node and every region kept", func(t *testing.T) {
		fc.nodes = manyNodes()
		_, b := e.do("GET", "/_api/v1/cache-config/hello", e.root, nil, nil)
		var cc v1.CacheConfig
		if err := json.Unmarshal(b, &cc); err != nil {
			t.Fatal(err)
		}
		regions := map[string]int{}
		for _, n := range cc.Nodes {
			regions[n.Region]++
		}
		if len(cc.Nodes) != MaxCacheNodes || cc.Nodes[0].Name != "ap-0" || regions["ap"] != 1 || regions["us"] != 1 {
			t.Fatalf("%d nodes, first %+v, per region %v", len(cc.Nodes), cc.Nodes[0], regions)
		}
	})

	t.Run("anonymous on a public cache; not on a private one", func(t *testing.T) {
		fc.nodes = nil // eu-1 and us-1
		_, b := e.do("GET", "/_api/v1/cache-config/open", "", nil, nil)
		var cc v1.CacheConfig
		if json.Unmarshal(b, &cc) != nil || len(cc.Nodes) != 2 {
			t.Fatalf("public cache, anonymous: %s", b)
		}
		if st, b := e.do("GET", "/_api/v1/cache-config/hello", "", nil, nil); st != 401 {
			t.Fatalf("private cache, anonymous: %d %s", st, b)
		}
		other := e.mint(token.MintOptions{Subject: "eve", Validity: time.Hour, Pull: []string{"open"}})
		if st, b := e.do("GET", "/_api/v1/cache-config/hello", other, nil, nil); st != 401 {
			t.Fatalf("private cache, a token for another cache: %d %s", st, b)
		}
	})
}

// TestNodePriority: the cache's priority plus the offset, within Nix's int.
func TestNodePriority(t *testing.T) {
	for _, tc := range []struct{ cache, offset, want int32 }{
		{41, 0, 41}, {41, 2, 43}, {-5, 3, -2}, {math.MaxInt32 - 10, 1000, math.MaxInt32}, {math.MinInt32, -1, math.MinInt32},
	} {
		if got := nodePriority(tc.cache, tc.offset); got != tc.want {
			t.Errorf("nodePriority(%d, %d) = %d, want %d", tc.cache, tc.offset, got, tc.want)
		}
	}
}
