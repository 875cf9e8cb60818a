package api

import (
	"cmp"
	"net/http"
	"slices"
	"strings"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/internal/dialurl"
	"github.com/garret-cache/garret/internal/nixid"
)

// MaxCacheNodes bounds the node list of a cache-config answer
// (v1.CacheConfig.Nodes).
const MaxCacheNodes = 64

// cacheNodes lists the cluster's live nodes with their substituter URL for
// the cache, so that `garret use` can measure them: nil on a lone node (the
// answer's substituter endpoint is the only one). A node's URL is its API URL
// from gossip ([cluster] api-url, else api-endpoint, else the listen
// address); one a client cannot dial (none, or an unspecified host such as
// 0.0.0.0) is left out, except this node's own, which becomes the endpoint
// the request reached. Nodes sharing a URL (a load balancer) are listed
// once. Nothing but names, regions and URLs is told.
func (s *Server) cacheNodes(r *http.Request, name nixid.CacheName) []v1.CacheNode {
	if s.cluster == nil {
		return nil
	}
	live := s.cluster.LiveNodes()
	if len(live) < 2 {
		return nil
	}
	// This node first, so that it is kept among nodes sharing a URL and
	// when the list is cut; then by region and name, so the answer is stable.
	slices.SortFunc(live, func(a, b v1.NodeEndpoint) int {
		if a.Self != b.Self {
			if a.Self {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.Region, b.Region), cmp.Compare(a.Name, b.Name))
	})
	seen := map[string]bool{}
	var out []v1.CacheNode
	for _, n := range live {
		base, ok := dialableURL(n.APIURL)
		var sub string
		switch {
		case ok:
			sub = base + "/" + string(name)
		case n.Self:
			sub = s.substituterEndpoint(r, name)
		default:
			continue
		}
		if seen[sub] {
			continue
		}
		seen[sub] = true
		out = append(out, v1.CacheNode{Name: n.Name, Region: n.Region, SubstituterEndpoint: sub})
	}
	if len(out) < 2 {
		return nil
	}
	return spreadOverRegions(out, MaxCacheNodes)
}

// dialableURL is u without its trailing slash if a client could dial it.
func dialableURL(u string) (string, bool) {
	if dialurl.Check(u) != nil {
		return "", false
	}
	return strings.TrimSuffix(u, "/"), true
}

// spreadOverRegions keeps at most limit of nodes (this node first), taking
// one node of each region in turn, so a cut list still shows every region
// (up to limit regions); the order within a region is kept.
func spreadOverRegions(nodes []v1.CacheNode, limit int) []v1.CacheNode {
	if len(nodes) <= limit {
		return nodes
	}
	var regions []string
	byRegion := map[string][]v1.CacheNode{}
	for _, n := range nodes {
		if _, ok := byRegion[n.Region]; !ok {
			regions = append(regions, n.Region)
		}
		byRegion[n.Region] = append(byRegion[n.Region], n)
	}
	out := make([]v1.CacheNode, 0, limit)
	for i := 0; len(out) < limit; i++ {
		for _, reg := range regions {
			if i < len(byRegion[reg]) && len(out) < limit {
				out = append(out, byRegion[reg][i])
			}
		}
	}
	return out
}
