package node

import (
	"context"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/replication/membership"
	"github.com/garret-cache/garret/replication/p2p"
)

// maxVoters is how many Raft voters the leader keeps; the rest are non-voters.
const maxVoters = 3

// startGossip joins the memberlist cluster when [cluster] asks for gossip.
func (n *Node) startGossip(ctx context.Context, peerID string) error {
	cc := n.cfg.Server.Cluster
	if cc.GossipListen == "" && len(cc.Join) == 0 {
		return nil // a lone node without gossip
	}
	host, portText, err := net.SplitHostPort(orDefault(cc.GossipListen, "127.0.0.1:0"))
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(portText)
	mc := membership.Config{
		NodeName: orDefault(cc.NodeName, peerID), BindAddr: host, BindPort: port, WAN: !n.cfg.FastTimings,
		Meta: membership.Meta{PeerID: peerID, Region: cc.Region, APIURL: orDefault(cc.APIURL, n.URL()),
			Voter: cc.Voter == nil || *cc.Voter, ClusterID: n.catalog.ClusterID()},
		OnChange: n.signalChange, Log: n.log.With("component", "membership"),
	}
	if cc.GossipAdvertise != "" {
		ah, ap, err := net.SplitHostPort(cc.GossipAdvertise)
		if err != nil {
			return err
		}
		mc.AdvertiseAddr = ah
		mc.AdvertisePort, _ = strconv.Atoi(ap)
	}
	for _, a := range n.host.Addrs() {
		mc.Meta.P2PAddrs = append(mc.Meta.P2PAddrs, a.String())
	}
	if cc.Secret != "" {
		if mc.SecretKey, err = p2p.DeriveKey(cc.Secret, p2p.LabelMemberlist); err != nil {
			return err
		}
	}
	n.changes = make(chan struct{}, 1)
	if n.members, err = membership.New(mc); err != nil {
		return err
	}
	n.book = loadPeerBook(n.cfg.Server.DataDir)
	rejoinEvery := 10 * time.Second
	if n.cfg.FastTimings {
		rejoinEvery = time.Second
	}
	n.wg.Add(2)
	go n.clusterLoop(ctx, cc.Join)
	go n.rejoinLoop(ctx, rejoinEvery)
	return nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// clusterLoop joins (retrying, with the reason logged) and reconciles Raft
// membership from gossip every few seconds.
func (n *Node) clusterLoop(ctx context.Context, join []string) {
	defer n.wg.Done()
	joined := len(join) == 0
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		if !joined {
			if _, err := n.members.Join(join); err != nil {
				n.log.Warn("cannot join the cluster yet; retrying (if this persists, check that [cluster] secret matches the other nodes')", "join", join, "err", err)
			} else {
				joined = true
			}
		}
		n.reconcile()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.changes:
		}
	}
}

// signalChange wakes the cluster loop (gossip callbacks must not block).
func (n *Node) signalChange() {
	select {
	case n.changes <- struct{}{}:
	default:
	}
}

// reconcile teaches libp2p every member's addresses and, on the leader, adds
// members missing from the Raft configuration (voters first, up to maxVoters).
func (n *Node) reconcile() {
	if n.members == nil {
		return
	}
	n.checkBook()
	members := n.members.Members()
	for _, m := range members {
		pid, err := peer.Decode(m.Meta.PeerID)
		if err != nil || pid == n.host.ID() {
			continue
		}
		for _, a := range m.Meta.P2PAddrs {
			if addr, err := ma.NewMultiaddr(a); err == nil {
				n.host.Peerstore().AddAddr(pid, addr, peerstore.PermanentAddrTTL)
			}
		}
	}
	if !n.catalog.IsLeader() {
		return
	}
	r := n.catalog.Raft()
	f := r.GetConfiguration()
	if f.Error() != nil {
		return
	}
	inConfig, voters := map[raft.ServerID]bool{}, 0
	for _, s := range f.Configuration().Servers {
		inConfig[s.ID] = true
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	ours := n.catalog.ClusterID()
	for _, m := range members {
		id := raft.ServerID(m.Meta.PeerID)
		if inConfig[id] {
			continue
		}
		if m.Meta.ClusterID != "" && m.Meta.ClusterID != ours {
			n.log.Error("refusing a node that holds another cluster's catalog: two Raft groups cannot merge; give it an empty data dir to join",
				"node", m.Name, "its_cluster", m.Meta.ClusterID, "this_cluster", ours)
			continue
		}
		var err error
		if m.Meta.Voter && voters < maxVoters {
			err = r.AddVoter(id, raft.ServerAddress(id), 0, 10*time.Second).Error()
			voters++
		} else {
			err = r.AddNonvoter(id, raft.ServerAddress(id), 0, 10*time.Second).Error()
		}
		if err != nil {
			n.log.Warn("adding a member to Raft failed", "node", m.Name, "err", err)
		} else {
			n.log.Info("member added to Raft", "node", m.Name, "region", m.Meta.Region, "voter", m.Meta.Voter && voters <= maxVoters)
		}
	}
}

// peersByDistance lists other members' peer IDs: same region first, then by RTT.
func (n *Node) peersByDistance() []peer.ID {
	members := n.Members()
	region := n.cfg.Server.Cluster.Region
	sort.SliceStable(members, func(i, j int) bool {
		si, sj := members[i].Meta.Region == region, members[j].Meta.Region == region
		if si != sj {
			return si
		}
		return members[i].RTT < members[j].RTT
	})
	var out []peer.ID
	for _, m := range members {
		if pid, err := peer.Decode(m.Meta.PeerID); err == nil && pid != n.host.ID() {
			out = append(out, pid)
		}
	}
	return n.withRaftPeers(out)
}

// Members is the gossip view (empty without gossip).
func (n *Node) Members() []membership.Member {
	if n.members == nil {
		return nil
	}
	return n.members.Members()
}

// ClusterStatus is this node's view: Raft roles and leader, gossip metadata and RTTs.
func (n *Node) ClusterStatus() v1.ClusterStatus {
	r := n.catalog.Raft()
	_, leader := r.LeaderWithID()
	st := v1.ClusterStatus{Node: n.host.ID().String(), Leader: string(leader), AppliedIndex: r.AppliedIndex(), CommitIndex: r.CommitIndex()}
	st.Term, _ = strconv.ParseUint(r.Stats()["term"], 10, 64)
	roles := map[string]string{}
	if f := r.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			role := "nonvoter"
			if s.Suffrage == raft.Voter {
				role = "voter"
			}
			roles[string(s.ID)] = role
		}
	}
	seen := map[string]bool{}
	for _, m := range n.Members() {
		role := roles[m.Meta.PeerID]
		if role == "" {
			role = "joining"
		}
		seen[m.Meta.PeerID] = true
		st.Nodes = append(st.Nodes, v1.ClusterNode{Name: m.Name, PeerID: m.Meta.PeerID, Region: m.Meta.Region, APIURL: m.Meta.APIURL,
			Role: role, Leader: m.Meta.PeerID == string(leader), RTTMs: float64(m.RTT.Microseconds()) / 1000})
	}
	for id, role := range roles { // Raft members gossip does not show (down, or no gossip)
		if !seen[id] {
			st.Nodes = append(st.Nodes, v1.ClusterNode{Name: id, PeerID: id, Role: role, Leader: id == string(leader)})
		}
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].Name < st.Nodes[j].Name })
	return st
}
