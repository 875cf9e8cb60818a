package node

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/replication/membership"
)

// startGossip joins the memberlist cluster when [cluster] asks for gossip.
func (n *Node) startGossip(ctx context.Context, peerID string) error {
	cc, g := n.cfg.Server.Cluster, n.plan.gossip
	if g == nil {
		return nil // a lone node without gossip
	}
	mc := membership.Config{
		NodeName: orDefault(cc.NodeName, peerID), BindAddr: g.bindHost, BindPort: g.bindPort, WAN: !n.cfg.FastTimings,
		Meta: membership.Meta{PeerID: peerID, Region: cc.Region, APIURL: orDefault(cc.APIURL, n.URL()),
			Voter: cc.Voter == nil || *cc.Voter, ClusterID: n.catalog.ClusterID()},
		OnChange: n.signalChange, Log: n.log.With("component", "membership"),
	}
	mc.AdvertiseAddr, mc.AdvertisePort, mc.SecretKey = g.advertiseHost, g.advertisePort, n.plan.gossipKey
	var err error
	for _, a := range n.host.Addrs() {
		mc.Meta.P2PAddrs = append(mc.Meta.P2PAddrs, a.String())
	}
	n.changes = make(chan struct{}, 1)
	if n.members, err = membership.New(mc); err != nil {
		return err
	}
	n.book = loadPeerBook(n.cfg.Server.DataDir)
	rejoinEvery := 5 * time.Second
	if n.cfg.FastTimings {
		rejoinEvery = time.Second
	}
	n.wg.Add(2)
	go n.clusterLoop(ctx, cc.Join)
	go n.rejoinLoop(ctx, rejoinEvery)
	return nil
}

// clusterLoop joins (retrying, with the reason logged) and reconciles Raft
// membership from gossip every few seconds.
func (n *Node) clusterLoop(ctx context.Context, join []string) {
	defer n.wg.Done()
	joined := len(join) == 0
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	var quiet joinLog
	for {
		if !joined {
			if _, err := n.members.Join(join); err != nil {
				quiet.report(n.log, join, err)
			} else {
				joined = true
				n.log.Info("joined the cluster by gossip", "join", join)
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

// joinLog reports failed joins: a wrong secret plainly, and each distinct
// reason at most every 30 s while the node keeps retrying.
type joinLog struct {
	last    string
	lastAt  time.Time
	retries int
}

func (j *joinLog) report(log *slog.Logger, join []string, err error) {
	j.retries++
	msg := err.Error()
	if j.last == msg && time.Since(j.lastAt) < 30*time.Second {
		return
	}
	j.last, j.lastAt = msg, time.Now()
	if wrongSecret(msg) {
		log.Error("cannot join the cluster: the node(s) at "+strings.Join(join, ", ")+" use another [cluster] secret (their gossip cannot be decrypted); every node needs the same secret. Retrying.",
			"retries", j.retries, "err", msg)
		return
	}
	log.Warn("cannot join the cluster yet; retrying (if this persists, check the join addresses and that [cluster] secret matches the other nodes')",
		"join", join, "retries", j.retries, "err", msg)
}

// wrongSecret recognises memberlist's errors for a key mismatch.
func wrongSecret(msg string) bool {
	for _, s := range []string{"no installed keys could decrypt", "encryption is not configured", "remote state is not encrypted"} {
		if strings.Contains(strings.ToLower(msg), s) {
			return true
		}
	}
	return false
}

// signalChange wakes the cluster loop (gossip callbacks must not block).
func (n *Node) signalChange() {
	select {
	case n.changes <- struct{}{}:
	default:
	}
}

// seenNode is what gossip last said about a node, and when it was last alive.
type seenNode struct {
	at             time.Time
	name, region   string
	eligible, live bool
}

// reconcile teaches libp2p every member's addresses and, on the leader,
// places voters (planPlacement): members missing from Raft are added, dead
// voters removed, free voter slots filled by promoting non-voters.
func (n *Node) reconcile() {
	if n.members == nil {
		return
	}
	n.reconcileMu.Lock()
	defer n.reconcileMu.Unlock()
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
	r := n.catalog.Raft()
	f := r.GetConfiguration()
	if f.Error() != nil {
		return
	}
	servers := f.Configuration().Servers
	now := time.Now()
	seen := n.track(now, members, servers) // on every node, so a new leader knows how long a voter has been gone
	if !n.catalog.IsLeader() {
		return
	}
	self := n.host.ID().String()
	in := placementInput{Leader: self, MaxVoters: n.maxVoters(), Config: map[string]bool{}, Nodes: map[string]nodeState{}}
	for _, s := range servers {
		id := string(s.ID)
		sn := seen[id]
		in.Config[id] = s.Suffrage == raft.Voter
		in.Nodes[id] = nodeState{Name: sn.name, Region: sn.region, Eligible: sn.eligible, Alive: sn.live || id == self,
			Dead: !sn.live && id != self && now.Sub(sn.at) > n.cfg.DeadVoterTimeout}
	}
	ours := n.catalog.ClusterID()
	for _, m := range members {
		id := m.Meta.PeerID
		if _, ok := in.Config[id]; !ok && m.Meta.ClusterID != "" && m.Meta.ClusterID != ours {
			n.log.Error("refusing a node that holds another cluster's catalog: two Raft groups cannot merge; give it an empty data dir to join",
				"node", m.Name, "its_cluster", m.Meta.ClusterID, "this_cluster", ours)
			continue
		}
		in.Nodes[id] = nodeState{Name: m.Name, Region: m.Meta.Region, Eligible: m.Meta.Voter, Alive: true}
	}
	if st, ok := in.Nodes[self]; ok {
		st.Alive, st.Dead = true, false
		in.Nodes[self] = st
	}
	n.applyPlacement(planPlacement(in), in, seen, now)
}

// applyPlacement makes the planned Raft configuration changes in order and
// stops at the first failure (the next pass plans again from what is).
func (n *Node) applyPlacement(p placement, in placementInput, seen map[string]seenNode, now time.Time) {
	r := n.catalog.Raft()
	const timeout = 10 * time.Second
	change := func(what string, id string, f raft.IndexFuture, extra ...any) bool {
		st := in.Nodes[id]
		args := append([]any{"node", st.Name, "region", st.Region, "peer_id", id}, extra...)
		if err := f.Error(); err != nil {
			n.log.Warn(what+" failed", append(args, "err", err)...)
			return false
		}
		n.log.Info(what, args...)
		return true
	}
	for _, id := range p.Remove {
		if !change("dead voter removed from Raft", id, r.RemoveServer(raft.ServerID(id), 0, timeout),
			"unseen_for", now.Sub(seen[id].at).Round(time.Millisecond).String()) {
			return
		}
	}
	for _, id := range p.Voters {
		what := "member added to Raft as a voter"
		if _, ok := in.Config[id]; ok {
			what = "non-voter promoted to voter"
		}
		if !change(what, id, r.AddVoter(raft.ServerID(id), raft.ServerAddress(id), 0, timeout)) {
			return
		}
	}
	for _, id := range p.Demote {
		if !change("voter demoted to non-voter", id, r.DemoteVoter(raft.ServerID(id), 0, timeout)) {
			return
		}
	}
	for _, id := range p.Nonvoters {
		if !change("member added to Raft as a non-voter", id, r.AddNonvoter(raft.ServerID(id), raft.ServerAddress(id), 0, timeout)) {
			return
		}
	}
}

// track records which Raft servers and members gossip shows alive now, and
// since when the others have been gone (from the first time this node saw
// them missing), and returns a copy of that record.
func (n *Node) track(now time.Time, members []membership.Member, servers []raft.Server) map[string]seenNode {
	n.seenMu.Lock()
	defer n.seenMu.Unlock()
	keep := map[string]bool{}
	for id, sn := range n.seen {
		sn.live = false
		n.seen[id] = sn
	}
	for _, m := range members {
		n.seen[m.Meta.PeerID] = seenNode{at: now, name: m.Name, region: m.Meta.Region, eligible: m.Meta.Voter, live: true}
		keep[m.Meta.PeerID] = true
	}
	for _, s := range servers {
		id := string(s.ID)
		if _, ok := n.seen[id]; !ok { // never seen in gossip: presume it may vote, as it did
			n.seen[id] = seenNode{at: now, name: id, eligible: true}
		}
		keep[id] = true
	}
	out := make(map[string]seenNode, len(n.seen))
	for id, sn := range n.seen {
		if !keep[id] {
			delete(n.seen, id)
			continue
		}
		out[id] = sn
	}
	return out
}

// maxVoters is [cluster] voters (3 or 5).
func (n *Node) maxVoters() int {
	if v := n.cfg.Server.Cluster.Voters; v > 0 {
		return v
	}
	return 3
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

// ClusterStatus is this node's view: Raft roles and leader, gossip metadata
// and RTTs, and every node's own Raft progress, asked in parallel.
func (n *Node) ClusterStatus(ctx context.Context) v1.ClusterStatus {
	r := n.catalog.Raft()
	_, leader := r.LeaderWithID()
	self := n.localStatus()
	st := v1.ClusterStatus{Node: n.host.ID().String(), Leader: string(leader), Term: self.Term,
		AppliedIndex: self.AppliedIndex, CommitIndex: self.CommitIndex}
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
	n.seenMu.Lock()
	for id, role := range roles { // Raft members gossip does not show (down, or no gossip)
		if !seen[id] {
			cn := v1.ClusterNode{Name: id, PeerID: id, Role: role, Leader: id == string(leader)}
			if sn, ok := n.seen[id]; ok && sn.name != "" {
				cn.Name, cn.Region = sn.name, sn.region // as gossip last showed it
			}
			if id == st.Node {
				cn.Name = orDefault(n.cfg.Server.Cluster.NodeName, id)
			}
			st.Nodes = append(st.Nodes, cn)
		}
	}
	n.seenMu.Unlock()
	ids := make([]string, len(st.Nodes))
	for i, cn := range st.Nodes {
		ids[i] = cn.PeerID
	}
	progress := n.queryStatuses(ctx, ids)
	for i, cn := range st.Nodes {
		if p, ok := progress[cn.PeerID]; ok {
			cn.AppliedIndex, cn.CommitIndex, cn.Term, cn.State = p.AppliedIndex, p.CommitIndex, p.Term, p.State
		} else {
			cn.Unreachable = true
		}
		st.Nodes[i] = cn
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].Name < st.Nodes[j].Name })
	return st
}
