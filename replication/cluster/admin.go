package cluster

import (
	"context"
	"errors"
	"strings"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/replication/catalog"
)

// errNoGossip answers admin commands on a node started without gossip.
var errNoGossip = refused("this node has no gossip configured: set [cluster] gossip-listen in its server.toml and restart it")

// JoinCluster gossip-joins existing members at addrs ("host:port"); the
// leader then adds this node to Raft as usual. It fails if none answered.
func (c *Controller) JoinCluster(addrs []string) (int, error) {
	if c.members == nil {
		return 0, errNoGossip
	}
	k, err := c.members.Join(addrs)
	if k == 0 {
		return 0, refused("none of %s could be reached (check the addresses, that gossip-listen is reachable, and that [cluster] secret matches): %v",
			strings.Join(addrs, ", "), err)
	}
	c.log.Info("joined gossip on an admin's request", "addrs", addrs, "contacted", k)
	c.signalChange()
	if ours := c.catalog.ClusterID(); ours != "" {
		for _, m := range c.members.Members() {
			if m.Meta.ClusterID != "" && m.Meta.ClusterID != ours {
				return k, refused("gossip joined, but %s belongs to another cluster (catalog %s; this node's is %s): two Raft groups cannot merge, so this node will not be added to its Raft; to move it there, stop it and start it with an empty data dir and join = [%q]",
					m.Name, m.Meta.ClusterID, ours, addrs[0])
			}
		}
	}
	return k, nil
}

// LeaveCluster asks this node to leave: Done is closed, and garretd then
// shuts the node down, which leaves Raft (a leader hands over first) and
// gossip before stopping.
func (c *Controller) LeaveCluster() (v1.ClusterLeaveResponse, error) {
	if c.members == nil {
		return v1.ClusterLeaveResponse{}, refused("this node is not in a cluster (no [cluster] gossip-listen or join): there is nothing to leave; stop it instead")
	}
	name := orDefault(c.cfg.NodeName, c.host.ID().String())
	c.leaveOnce.Do(func() {
		c.log.Info("an admin asked this node to leave the cluster: leaving, then exiting", "node", name)
		close(c.leaving)
	})
	return v1.ClusterLeaveResponse{Node: name, Message: name + " is leaving the cluster (handing over leadership if it leads); garretd exits once it has left"}, nil
}

// Done is closed when an admin asked this node to leave; garretd then calls
// Shutdown and exits.
func (c *Controller) Done() <-chan struct{} { return c.leaving }

// RemoveNode has the leader remove a node, named by gossip name or peer ID,
// from the Raft configuration: for a node that will not come back. A node
// gossip still shows alive is removed too, but the leader adds it again.
func (c *Controller) RemoveNode(ctx context.Context, ref string) (v1.ClusterRemoveResponse, error) {
	servers, err := c.catalog.Servers()
	if err != nil {
		return v1.ClusterRemoveResponse{}, err
	}
	id, name, region, alive := "", "", "", false
	for _, m := range c.Members() {
		if m.Name == ref || m.Meta.PeerID == ref {
			id, name, region, alive = m.Meta.PeerID, m.Name, m.Meta.Region, true
		}
	}
	if id == "" {
		c.seenMu.Lock()
		for sid, sn := range c.seen {
			if sid == ref || sn.name == ref {
				id, name, region = sid, sn.name, sn.region
			}
		}
		c.seenMu.Unlock()
	}
	for _, s := range servers {
		if id == "" && s.ID == ref {
			id, name = ref, ref
		}
	}
	if id == "" {
		return v1.ClusterRemoveResponse{}, noSuchNode("no node %q in the Raft configuration or in gossip (garret cluster status lists them)", ref)
	}
	voters, live, isVoter, inConfig := 0, 0, false, false
	leader := c.catalog.Leader()
	for _, s := range servers {
		if s.ID == id {
			inConfig, isVoter = true, s.Voter
		}
		if s.Voter {
			voters++
			if s.ID == leader || c.isAlive(s.ID) {
				live++
			}
		}
	}
	switch {
	case !inConfig:
		return v1.ClusterRemoveResponse{}, noSuchNode("%s (%s) is not in the Raft configuration: there is nothing to remove", name, id)
	case id == leader:
		return v1.ClusterRemoveResponse{}, refused("%s is the leader: run garret cluster leave on that node instead (it hands over leadership first)", name)
	case isVoter:
		after := live
		if alive {
			after--
		}
		if after < catalog.Quorum(voters-1) {
			return v1.ClusterRemoveResponse{}, refused("removing %s would leave %d live voter(s) of %d: the cluster would lose its quorum", name, after, voters-1)
		}
	}
	err = c.catalog.RemoveServer(ctx, id)
	switch {
	case errors.Is(err, catalog.ErrNoSuchServer):
		return v1.ClusterRemoveResponse{}, noSuchNode("%s (%s) is not in the Raft configuration: there is nothing to remove", name, id)
	case errors.Is(err, catalog.ErrRemoveLeader):
		return v1.ClusterRemoveResponse{}, refused("%s is the leader: run garret cluster leave on that node instead (it hands over leadership first)", name)
	case err != nil:
		return v1.ClusterRemoveResponse{}, err
	}
	c.log.Info("node removed from Raft on an admin's request", "node", name, "region", region, "peer_id", id, "still_alive", alive)
	res := v1.ClusterRemoveResponse{Node: name, PeerID: id, StillAlive: alive, Message: name + " was removed from the Raft configuration"}
	if alive {
		res.Message += "; gossip still shows it alive, so the leader will add it again while it runs (stop it, or run garret cluster leave on it)"
	}
	return res, nil
}

// isAlive reports whether gossip shows the node now.
func (c *Controller) isAlive(id string) bool {
	for _, m := range c.Members() {
		if m.Meta.PeerID == id {
			return true
		}
	}
	return false
}
