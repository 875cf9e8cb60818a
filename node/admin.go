package node

import (
	"context"
	"errors"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/garret-cache/garret/api"
	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/replication/catalog"
)

// errNoGossip answers admin commands on a node started without gossip.
var errNoGossip = api.ClusterRequestError("this node has no gossip configured: set [cluster] gossip-listen in its server.toml and restart it")

// JoinCluster gossip-joins existing members at addrs ("host:port"); the
// leader then adds this node to Raft as usual. It fails if none answered.
func (n *Node) JoinCluster(addrs []string) (int, error) {
	if n.members == nil {
		return 0, errNoGossip
	}
	k, err := n.members.Join(addrs)
	if k == 0 {
		return 0, api.ClusterRequestError("none of %s could be reached (check the addresses, that gossip-listen is reachable, and that [cluster] secret matches): %v",
			strings.Join(addrs, ", "), err)
	}
	n.log.Info("joined gossip on an admin's request", "addrs", addrs, "contacted", k)
	n.signalChange()
	if ours := n.catalog.ClusterID(); ours != "" {
		for _, m := range n.members.Members() {
			if m.Meta.ClusterID != "" && m.Meta.ClusterID != ours {
				return k, api.ClusterRequestError("gossip joined, but %s belongs to another cluster (catalog %s; this node's is %s): two Raft groups cannot merge, so this node will not be added to its Raft; to move it there, stop it and start it with an empty data dir and join = [%q]",
					m.Name, m.Meta.ClusterID, ours, addrs[0])
			}
		}
	}
	return k, nil
}

// LeaveCluster asks this node to leave: Done is closed, and garretd then
// shuts the node down, which leaves Raft (a leader hands over first) and
// gossip before stopping.
func (n *Node) LeaveCluster() (v1.ClusterLeaveResponse, error) {
	if n.members == nil {
		return v1.ClusterLeaveResponse{}, api.ClusterRequestError("this node is not in a cluster (no [cluster] gossip-listen or join): there is nothing to leave; stop it instead")
	}
	name := orDefault(n.cfg.Server.Cluster.NodeName, n.host.ID().String())
	n.leaveOnce.Do(func() {
		n.log.Info("an admin asked this node to leave the cluster: leaving, then exiting", "node", name)
		close(n.leaving)
	})
	return v1.ClusterLeaveResponse{Node: name, Message: name + " is leaving the cluster (handing over leadership if it leads); garretd exits once it has left"}, nil
}

// Done is closed when an admin asked this node to leave; garretd then calls
// Shutdown and exits.
func (n *Node) Done() <-chan struct{} { return n.leaving }

// RemoveNode has the leader remove a node, named by gossip name or peer ID,
// from the Raft configuration: for a node that will not come back. A node
// gossip still shows alive is removed too, but the leader adds it again.
func (n *Node) RemoveNode(ctx context.Context, ref string) (v1.ClusterRemoveResponse, error) {
	r := n.catalog.Raft()
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return v1.ClusterRemoveResponse{}, err
	}
	servers := f.Configuration().Servers
	id, name, region, alive := "", "", "", false
	for _, m := range n.Members() {
		if m.Name == ref || m.Meta.PeerID == ref {
			id, name, region, alive = m.Meta.PeerID, m.Name, m.Meta.Region, true
		}
	}
	if id == "" {
		n.seenMu.Lock()
		for sid, sn := range n.seen {
			if sid == ref || sn.name == ref {
				id, name, region = sid, sn.name, sn.region
			}
		}
		n.seenMu.Unlock()
	}
	for _, s := range servers {
		if id == "" && string(s.ID) == ref {
			id, name = ref, ref
		}
	}
	if id == "" {
		return v1.ClusterRemoveResponse{}, api.NoSuchNode("no node %q in the Raft configuration or in gossip (garret cluster status lists them)", ref)
	}
	voters, live, isVoter, inConfig := 0, 0, false, false
	_, leader := r.LeaderWithID()
	for _, s := range servers {
		sid := string(s.ID)
		if sid == id {
			inConfig, isVoter = true, s.Suffrage == raft.Voter
		}
		if s.Suffrage == raft.Voter {
			voters++
			if sid == string(leader) || n.isAlive(sid) {
				live++
			}
		}
	}
	switch {
	case !inConfig:
		return v1.ClusterRemoveResponse{}, api.NoSuchNode("%s (%s) is not in the Raft configuration: there is nothing to remove", name, id)
	case id == string(leader):
		return v1.ClusterRemoveResponse{}, api.ClusterRequestError("%s is the leader: run garret cluster leave on that node instead (it hands over leadership first)", name)
	case isVoter:
		after := live
		if alive {
			after--
		}
		if after < (voters-1)/2+1 {
			return v1.ClusterRemoveResponse{}, api.ClusterRequestError("removing %s would leave %d live voter(s) of %d: the cluster would lose its quorum", name, after, voters-1)
		}
	}
	err := n.catalog.RemoveServer(ctx, id)
	switch {
	case errors.Is(err, catalog.ErrNoSuchServer):
		return v1.ClusterRemoveResponse{}, api.NoSuchNode("%s (%s) is not in the Raft configuration: there is nothing to remove", name, id)
	case errors.Is(err, catalog.ErrRemoveLeader):
		return v1.ClusterRemoveResponse{}, api.ClusterRequestError("%s is the leader: run garret cluster leave on that node instead (it hands over leadership first)", name)
	case err != nil:
		return v1.ClusterRemoveResponse{}, err
	}
	n.log.Info("node removed from Raft on an admin's request", "node", name, "region", region, "peer_id", id, "still_alive", alive)
	res := v1.ClusterRemoveResponse{Node: name, PeerID: id, StillAlive: alive, Message: name + " was removed from the Raft configuration"}
	if alive {
		res.Message += "; gossip still shows it alive, so the leader will add it again while it runs (stop it, or run garret cluster leave on it)"
	}
	return res, nil
}

// isAlive reports whether gossip shows the node now.
func (n *Node) isAlive(id string) bool {
	for _, m := range n.Members() {
		if m.Meta.PeerID == id {
			return true
		}
	}
	return false
}
