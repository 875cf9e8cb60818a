package cluster

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/replication/catalog"
	"github.com/garret-cache/garret/replication/membership"
)

// startGossip joins the memberlist cluster and starts the loops.
func (c *Controller) startGossip(ctx context.Context) error {
	g, peerID := c.cfg.Gossip, c.host.ID().String()
	mc := membership.Config{
		NodeName: orDefault(c.cfg.NodeName, peerID), BindAddr: g.BindHost, BindPort: g.BindPort, WAN: !c.cfg.LAN,
		Meta: membership.Meta{PeerID: peerID, Region: c.cfg.Region, APIURL: c.cfg.APIURL,
			Voter: c.cfg.Voter, ClusterID: c.catalog.ClusterID(), Version: catalog.CommandVersion},
		OnChange: c.signalChange, Log: c.log.With("component", "membership"),
	}
	mc.AdvertiseAddr, mc.AdvertisePort, mc.SecretKey = g.AdvertiseHost, g.AdvertisePort, g.Key
	var err error
	for _, a := range c.host.Addrs() {
		mc.Meta.P2PAddrs = append(mc.Meta.P2PAddrs, a.String())
	}
	if c.members, err = membership.New(mc); err != nil {
		return err
	}
	if c.metrics != nil {
		if err := c.metrics.Register(c.members.Collector()); err != nil {
			_ = c.members.Stop()
			return err
		}
	}
	c.book = loadPeerBook(c.cfg.DataDir)
	c.wg.Add(2)
	go c.clusterLoop(ctx, c.cfg.Join)
	go c.rejoinLoop(ctx, c.cfg.RejoinEvery)
	return nil
}

// clusterLoop joins (retrying, with the reason logged) and reconciles Raft
// membership from gossip every few seconds.
func (c *Controller) clusterLoop(ctx context.Context, join []string) {
	defer c.wg.Done()
	joined := len(join) == 0
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	var quiet joinLog
	for {
		if !joined {
			if _, err := c.members.Join(join); err != nil {
				quiet.report(c.log, join, err)
			} else {
				joined = true
				c.log.Info("joined the cluster by gossip", "join", join)
			}
		}
		c.Reconcile()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.changes:
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
func (c *Controller) signalChange() {
	select {
	case c.changes <- struct{}{}:
	default:
	}
}

// seenNode is what gossip last said about a node, and when it was last alive.
type seenNode struct {
	at             time.Time
	name, region   string
	eligible, live bool
	version        int // catalog.CommandVersion it advertised (0: never seen)
}

// Reconcile runs one pass of the placement loop now: it teaches libp2p
// every member's addresses and, on the leader, places voters
// (planPlacement): members missing from Raft are added, dead voters
// removed, free voter slots filled by promoting non-voters.
func (c *Controller) Reconcile() {
	if c.members == nil {
		return
	}
	c.reconcileMu.Lock()
	defer c.reconcileMu.Unlock()
	c.checkBook()
	members := c.members.Members()
	for _, m := range members {
		pid, err := peer.Decode(m.Meta.PeerID)
		if err != nil || pid == c.host.ID() {
			continue
		}
		for _, a := range m.Meta.P2PAddrs {
			if addr, err := ma.NewMultiaddr(a); err == nil {
				c.host.Peerstore().AddAddr(pid, addr, peerstore.PermanentAddrTTL)
			}
		}
	}
	servers, err := c.catalog.Servers()
	if err != nil {
		return
	}
	now := time.Now()
	seen := c.track(now, members, servers) // on every node, so a new leader knows how long a voter has been gone
	if !c.catalog.IsLeader() {
		return
	}
	self := c.host.ID().String()
	in := placementInput{Leader: self, MaxVoters: c.maxVoters(), Config: map[string]bool{}, Nodes: map[string]nodeState{}}
	for _, s := range servers {
		id := s.ID
		sn := seen[id]
		in.Config[id] = s.Voter
		in.Nodes[id] = nodeState{Name: sn.name, Region: sn.region, Eligible: sn.eligible, Alive: sn.live || id == self,
			Dead: !sn.live && id != self && now.Sub(sn.at) > c.cfg.DeadVoterTimeout}
	}
	ours := c.catalog.ClusterID()
	for _, m := range members {
		id := m.Meta.PeerID
		if _, ok := in.Config[id]; !ok && m.Meta.ClusterID != "" && m.Meta.ClusterID != ours {
			c.log.Error("refusing a node that holds another cluster's catalog: two Raft groups cannot merge; give it an empty data dir to join",
				"node", m.Name, "its_cluster", m.Meta.ClusterID, "this_cluster", ours)
			continue
		}
		in.Nodes[id] = nodeState{Name: m.Name, Region: m.Meta.Region, Eligible: m.Meta.Voter, Alive: true}
	}
	if st, ok := in.Nodes[self]; ok {
		st.Alive, st.Dead = true, false
		in.Nodes[self] = st
	}
	c.applyPlacement(planPlacement(in), in, seen, now)
}

// applyPlacement makes the planned Raft configuration changes in order and
// stops at the first failure (the next pass plans again from what is).
func (c *Controller) applyPlacement(p placement, in placementInput, seen map[string]seenNode, now time.Time) {
	change := func(what string, id string, err error, extra ...any) bool {
		st := in.Nodes[id]
		args := append([]any{"node", st.Name, "region", st.Region, "peer_id", id}, extra...)
		if err != nil {
			c.log.Warn(what+" failed", append(args, "err", err)...)
			return false
		}
		c.log.Info(what, args...)
		return true
	}
	for _, id := range p.Remove {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.catalog.RemoveServer(ctx, id)
		cancel()
		if !change("dead voter removed from Raft", id, err, "unseen_for", now.Sub(seen[id].at).Round(time.Millisecond).String()) {
			return
		}
	}
	for _, id := range p.Voters {
		what := "member added to Raft as a voter"
		if _, ok := in.Config[id]; ok {
			what = "non-voter promoted to voter"
		}
		if !change(what, id, c.catalog.AddVoter(id)) {
			return
		}
	}
	for _, id := range p.Demote {
		if !change("voter demoted to non-voter", id, c.catalog.DemoteVoter(id)) {
			return
		}
	}
	for _, id := range p.Nonvoters {
		if !change("member added to Raft as a non-voter", id, c.catalog.AddNonvoter(id)) {
			return
		}
	}
}

// track records which Raft servers and members gossip shows alive now, and
// since when the others have been gone (from the first time this node saw
// them missing), and returns a copy of that record.
func (c *Controller) track(now time.Time, members []membership.Member, servers []catalog.Server) map[string]seenNode {
	c.seenMu.Lock()
	defer c.seenMu.Unlock()
	keep := map[string]bool{}
	for id, sn := range c.seen {
		sn.live = false
		c.seen[id] = sn
	}
	for _, m := range members {
		c.seen[m.Meta.PeerID] = seenNode{at: now, name: m.Name, region: m.Meta.Region, eligible: m.Meta.Voter, live: true,
			version: max(m.Meta.Version, 1)}
		keep[m.Meta.PeerID] = true
	}
	for _, s := range servers {
		id := s.ID
		if _, ok := c.seen[id]; !ok { // never seen in gossip: presume it may vote, as it did
			c.seen[id] = seenNode{at: now, name: id, eligible: true}
		}
		keep[id] = true
	}
	out := make(map[string]seenNode, len(c.seen))
	for id, sn := range c.seen {
		if !keep[id] {
			delete(c.seen, id)
			continue
		}
		out[id] = sn
	}
	return out
}

// maxVoters is [cluster] voters (3 or 5).
func (c *Controller) maxVoters() int { return c.cfg.Voters }

// PeersByDistance lists other members' peer IDs: same region first, then
// by RTT, then the Raft servers gossip does not show.
func (c *Controller) PeersByDistance() []peer.ID {
	members := c.Members()
	region := c.cfg.Region
	sort.SliceStable(members, func(i, j int) bool {
		si, sj := members[i].Meta.Region == region, members[j].Meta.Region == region
		if si != sj {
			return si
		}
		return members[i].RTT < members[j].RTT
	})
	var out []peer.ID
	for _, m := range members {
		if pid, err := peer.Decode(m.Meta.PeerID); err == nil && pid != c.host.ID() {
			out = append(out, pid)
		}
	}
	return c.withRaftPeers(out)
}

// LiveNodes are the nodes gossip shows alive, this one included (Self),
// with their public API URLs.
func (c *Controller) LiveNodes() []v1.NodeEndpoint {
	var out []v1.NodeEndpoint
	leader := c.catalog.Leader()
	for _, m := range c.Members() {
		out = append(out, v1.NodeEndpoint{Name: m.Name, Region: m.Meta.Region, APIURL: m.Meta.APIURL,
			Self: m.Meta.PeerID == c.host.ID().String(), Leader: leader != "" && m.Meta.PeerID == leader})
	}
	return out
}

// Members is the gossip view (empty without gossip).
func (c *Controller) Members() []membership.Member {
	if c.members == nil {
		return nil
	}
	return c.members.Members()
}

// The health words of v1.ClusterNode.
const (
	HealthAlive   = "alive"
	HealthSuspect = "suspect"
	HealthDead    = "dead"
	HealthLeft    = "left"
)

// departed is what gossip saw go, by peer ID (empty without gossip).
func (c *Controller) departed() map[string]v1.DepartedNode {
	out := map[string]v1.DepartedNode{}
	if c.members == nil {
		return out
	}
	for _, d := range c.members.Departed() {
		if d.Meta.PeerID == "" {
			continue
		}
		h := HealthDead
		if d.Left {
			h = HealthLeft
		}
		out[d.Meta.PeerID] = v1.DepartedNode{Name: d.Name, Region: d.Meta.Region, Health: h, Since: d.At}
	}
	return out
}

// ClusterStatus is this node's view: Raft roles and leader, gossip metadata
// and RTTs, and every node's own Raft progress, asked in parallel.
func (c *Controller) ClusterStatus(ctx context.Context) v1.ClusterStatus {
	leader := c.catalog.Leader()
	self := c.catalog.Progress()
	st := v1.ClusterStatus{Node: c.host.ID().String(), Leader: leader, Term: self.Term,
		AppliedIndex: self.AppliedIndex, CommitIndex: self.CommitIndex}
	roles := map[string]string{}
	if servers, err := c.catalog.Servers(); err == nil {
		for _, s := range servers {
			role := "nonvoter"
			if s.Voter {
				role = "voter"
			}
			roles[s.ID] = role
		}
	}
	seen := map[string]bool{}
	for _, m := range c.Members() {
		role := roles[m.Meta.PeerID]
		if role == "" {
			role = "joining"
		}
		seen[m.Meta.PeerID] = true
		st.Nodes = append(st.Nodes, v1.ClusterNode{Name: m.Name, PeerID: m.Meta.PeerID, Region: m.Meta.Region, APIURL: m.Meta.APIURL,
			Role: role, Leader: m.Meta.PeerID == leader, RTTMs: float64(m.RTT.Microseconds()) / 1000, Health: HealthAlive})
	}
	departed := c.departed()
	c.seenMu.Lock()
	for id, role := range roles { // Raft members gossip does not show (down, or no gossip)
		if !seen[id] {
			cn := v1.ClusterNode{Name: id, PeerID: id, Role: role, Leader: id == leader, Health: HealthDead}
			if d, ok := departed[id]; ok {
				cn.Health = d.Health
			}
			if sn, ok := c.seen[id]; ok && sn.name != "" {
				cn.Name, cn.Region = sn.name, sn.region // as gossip last showed it
			}
			if id == st.Node {
				cn.Name, cn.Health = orDefault(c.cfg.NodeName, id), HealthAlive
			}
			st.Nodes = append(st.Nodes, cn)
			seen[id] = true
		}
	}
	c.seenMu.Unlock()
	for id, d := range departed {
		if !seen[id] {
			st.Departed = append(st.Departed, d)
		}
	}
	sort.Slice(st.Departed, func(i, j int) bool { return st.Departed[i].Since.After(st.Departed[j].Since) })
	ids := make([]string, len(st.Nodes))
	for i, cn := range st.Nodes {
		ids[i] = cn.PeerID
	}
	progress, replication := c.queryStatuses(ctx, ids)
	for i, cn := range st.Nodes {
		if p, ok := progress[cn.PeerID]; ok {
			cn.AppliedIndex, cn.CommitIndex, cn.Term, cn.State = p.AppliedIndex, p.CommitIndex, p.Term, p.State
		} else {
			cn.Unreachable = true
			if cn.Health == HealthAlive && cn.PeerID != st.Node {
				cn.Health = HealthSuspect // gossip still lists it, but it did not answer
			}
		}
		if r, ok := replication[cn.PeerID]; ok {
			cn.Replication = &r
		}
		st.Nodes[i] = cn
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].Name < st.Nodes[j].Name })
	return st
}
