package cluster

import (
	"sort"

	"github.com/garret-cache/garret/replication/catalog"
	objects "github.com/garret-cache/garret/replication/placement"
)

// MinVersion is the oldest catalog.CommandVersion among the Raft servers:
// what gossip shows now, else what it last showed; a server gossip has never
// shown counts as version 1 (it may be an old node that is down), so a new
// command type waits until every server has been seen upgraded. The catalog
// proposes a command only when this is at least the version that introduced
// its type (catalog.Config.MinVersion).
func (c *Controller) MinVersion() int {
	servers, err := c.catalog.Servers()
	if err != nil {
		return 1
	}
	current := map[string]int{}
	for _, m := range c.Members() {
		current[m.Meta.PeerID] = max(m.Meta.Version, 1)
	}
	self := c.catalog.NodeID()
	c.seenMu.Lock()
	defer c.seenMu.Unlock()
	low := catalog.CommandVersion
	for _, s := range servers {
		v, ok := current[s.ID]
		switch {
		case s.ID == self:
			v = catalog.CommandVersion
		case !ok:
			v = max(c.seen[s.ID].version, 1)
		}
		low = min(low, v)
	}
	return low
}

// PlacementNodes are the nodes placement may choose: the members gossip
// shows alive that are in the Raft configuration (a node of another
// cluster, or one not yet added, holds nothing), this node included.
func (c *Controller) PlacementNodes() []objects.Node {
	servers, err := c.catalog.Servers()
	if err != nil {
		return nil
	}
	inRaft := make(map[string]bool, len(servers))
	for _, s := range servers {
		inRaft[s.ID] = true
	}
	self := c.host.ID().String()
	out := []objects.Node{{ID: self, Region: c.cfg.Region}}
	for _, m := range c.Members() {
		if m.Meta.PeerID != self && inRaft[m.Meta.PeerID] {
			out = append(out, objects.Node{ID: m.Meta.PeerID, Region: m.Meta.Region})
		}
	}
	return out
}

// PlacementPeers is PlacementNodes without this node, nearest first (this
// node's region first, then by gossip RTT).
func (c *Controller) PlacementPeers() []objects.Node {
	rank := map[string]int{}
	for i, p := range c.PeersByDistance() {
		rank[p.String()] = i + 1
	}
	self := c.host.ID().String()
	var out []objects.Node
	for _, n := range c.PlacementNodes() {
		if n.ID != self {
			out = append(out, n)
		}
	}
	far := len(rank) + 1 // not in gossip's view: last
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := rank[out[i].ID], rank[out[j].ID]
		if ri == 0 {
			ri = far
		}
		if rj == 0 {
			rj = far
		}
		return ri < rj
	})
	return out
}
