package node

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/garret-cache/garret/internal/durable"
	"github.com/garret-cache/garret/replication/membership"
)

// memberlist forgets a member it has declared dead, and never probes it
// again: after a partition both sides have declared the other dead, and a
// restarted node without `join` (the one that bootstrapped) knows nobody.
// Like Serf's reconnect, the node therefore keeps a small address book of the
// Raft members' gossip addresses (data-dir/members.json) and keeps trying to
// join those that gossip does not show alive. A member that comes back gets
// its stale libp2p connections closed and its dial backoff cleared, so Raft
// and chunk fetches reconnect at once instead of waiting out TCP retransmit
// and libp2p backoff timers that grew during the outage.

// peerBook is the remembered gossip address of each member, by peer ID.
type peerBook struct {
	path string
	mu   sync.Mutex
	addr map[string]string
	seen map[string]bool // members met alive by this process: alive at the last look?
}

func loadPeerBook(dataDir string) *peerBook {
	b := &peerBook{path: filepath.Join(dataDir, "members.json"), addr: map[string]string{}, seen: map[string]bool{}}
	if data, err := os.ReadFile(b.path); err == nil {
		_ = json.Unmarshal(data, &b.addr) // a damaged book only costs the rejoin
	}
	return b
}

// update records the live members' addresses and forgets those that are
// neither alive nor in the Raft configuration (they left or were removed).
// It returns the addresses to try and the members that came back to life.
func (b *peerBook) update(self string, alive []membership.Member, inRaft map[string]bool) (missing []string, returned []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := map[string]bool{}
	changed := false
	for _, m := range alive {
		id := m.Meta.PeerID
		if id == self || id == "" {
			continue
		}
		now[id] = true
		if b.addr[id] != m.Gossip {
			b.addr[id], changed = m.Gossip, true
		}
	}
	for id, addr := range b.addr {
		switch {
		case now[id]:
		case inRaft != nil && !inRaft[id]:
			delete(b.addr, id)
			changed = true
		default:
			missing = append(missing, addr)
		}
	}
	for id := range now {
		if _, known := b.seen[id]; known && !b.seen[id] {
			returned = append(returned, id)
		}
	}
	// Only a member seen alive by this process can come "back": at start
	// the book's members are simply not met yet, and their fresh
	// connections must not be closed.
	for id := range b.addr {
		if now[id] {
			b.seen[id] = true
		} else if _, met := b.seen[id]; met {
			b.seen[id] = false
		}
	}
	if changed {
		b.save()
	}
	sort.Strings(missing)
	return missing, returned
}

func (b *peerBook) save() {
	data, err := json.Marshal(b.addr)
	if err != nil {
		return
	}
	_ = durable.WriteFile(b.path, data, 0o600)
}

// rejoinLoop keeps the address book current and rejoins missing members.
func (n *Node) rejoinLoop(ctx context.Context, every time.Duration) {
	defer n.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n.rejoinOnce()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// rejoinOnce is one round of rejoinLoop.
func (n *Node) rejoinOnce() {
	missing := n.checkBook()
	if len(missing) == 0 {
		return
	}
	if k, err := n.members.Join(missing); err == nil {
		n.log.Info("rejoined cluster members that gossip had lost", "contacted", k, "addrs", missing)
		n.checkBook()
		n.signalChange()
	} else {
		n.log.Debug("members still unreachable", "addrs", missing, "err", err)
	}
}

// checkBook updates the address book from gossip and the Raft
// configuration, refreshes members that came back, and returns the
// addresses of members gossip does not show alive.
func (n *Node) checkBook() []string {
	if n.book == nil {
		return nil
	}
	var inRaft map[string]bool
	if f := n.catalog.Raft().GetConfiguration(); f.Error() == nil && len(f.Configuration().Servers) > 0 {
		inRaft = map[string]bool{}
		for _, s := range f.Configuration().Servers {
			inRaft[string(s.ID)] = true
		}
	}
	missing, returned := n.book.update(n.host.ID().String(), n.members.Members(), inRaft)
	for _, id := range returned {
		n.refreshPeer(id)
	}
	return missing
}

// refreshPeer drops stale connections to a member that came back and clears
// its dial backoff, so the next Raft RPC or fetch dials afresh.
func (n *Node) refreshPeer(id string) {
	pid, err := peer.Decode(id)
	if err != nil {
		return
	}
	if sw, ok := n.host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(pid)
	}
	_ = n.host.Network().ClosePeer(pid)
	n.log.Info("member is back; reconnecting", "peer", id)
}

// withRaftPeers appends the Raft members gossip does not list: while gossip
// is still rejoining (a restart) or split (a partition), libp2p may well
// reach them, since the leader dials every member.
func (n *Node) withRaftPeers(peers []peer.ID) []peer.ID {
	f := n.catalog.Raft().GetConfiguration()
	if f.Error() != nil {
		return peers
	}
	have := map[peer.ID]bool{n.host.ID(): true}
	for _, p := range peers {
		have[p] = true
	}
	for _, s := range f.Configuration().Servers {
		if pid, err := peer.Decode(string(s.ID)); err == nil && !have[pid] {
			peers = append(peers, pid)
			have[pid] = true
		}
	}
	return peers
}

// gossipReady is part of /readyz for a node of a multi-node cluster: it has
// seen at least one other member by gossip (a restarted node has rejoined),
// so it can find peers for the NARs it lacks.
func (n *Node) gossipReady() error {
	if n.members == nil {
		return nil
	}
	f := n.catalog.Raft().GetConfiguration()
	if f.Error() != nil || len(f.Configuration().Servers) <= 1 {
		return nil
	}
	for _, m := range n.members.Members() {
		if m.Meta.PeerID != n.host.ID().String() {
			return nil
		}
	}
	return errors.New("gossip: no other cluster member seen yet")
}
