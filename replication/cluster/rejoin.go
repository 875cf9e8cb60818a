package cluster

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

// RememberedMembers is how many other members the address book in dataDir
// lists: a data dir with any belongs to a node of a cluster.
func RememberedMembers(dataDir string) int { return len(loadPeerBook(dataDir).addr) }

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
func (c *Controller) rejoinLoop(ctx context.Context, every time.Duration) {
	defer c.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		c.rejoinOnce()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// rejoinOnce is one round of rejoinLoop.
func (c *Controller) rejoinOnce() {
	missing := c.checkBook()
	if len(missing) == 0 {
		return
	}
	if k, err := c.members.Join(missing); err == nil {
		c.log.Info("rejoined cluster members that gossip had lost", "contacted", k, "addrs", missing)
		c.checkBook()
		c.signalChange()
	} else {
		c.log.Debug("members still unreachable", "addrs", missing, "err", err)
	}
}

// checkBook updates the address book from gossip and the Raft
// configuration, refreshes members that came back, and returns the
// addresses of members gossip does not show alive.
func (c *Controller) checkBook() []string {
	if c.book == nil {
		return nil
	}
	var inRaft map[string]bool
	if servers, err := c.catalog.Servers(); err == nil && len(servers) > 0 {
		inRaft = map[string]bool{}
		for _, s := range servers {
			inRaft[s.ID] = true
		}
	}
	missing, returned := c.book.update(c.host.ID().String(), c.members.Members(), inRaft)
	for _, id := range returned {
		c.refreshPeer(id)
	}
	return missing
}

// refreshPeer drops stale connections to a member that came back and clears
// its dial backoff, so the next Raft RPC or fetch dials afresh.
func (c *Controller) refreshPeer(id string) {
	pid, err := peer.Decode(id)
	if err != nil {
		return
	}
	if sw, ok := c.host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(pid)
	}
	_ = c.host.Network().ClosePeer(pid)
	c.log.Info("member is back; reconnecting", "peer", id)
}

// withRaftPeers appends the Raft members gossip does not list: while gossip
// is still rejoining (a restart) or split (a partition), libp2p may well
// reach them, since the leader dials every member.
func (c *Controller) withRaftPeers(peers []peer.ID) []peer.ID {
	servers, err := c.catalog.Servers()
	if err != nil {
		return peers
	}
	have := map[peer.ID]bool{c.host.ID(): true}
	for _, p := range peers {
		have[p] = true
	}
	for _, s := range servers {
		if pid, err := peer.Decode(s.ID); err == nil && !have[pid] {
			peers = append(peers, pid)
			have[pid] = true
		}
	}
	return peers
}

// Ready is part of /readyz for a node of a multi-node cluster: it has seen
// at least one other member by gossip (a restarted node has rejoined), so
// it can find peers for the NARs it lacks.
func (c *Controller) Ready() error {
	if c.members == nil {
		return nil
	}
	if servers, err := c.catalog.Servers(); err != nil || len(servers) <= 1 {
		return nil
	}
	for _, m := range c.members.Members() {
		if m.Meta.PeerID != c.host.ID().String() {
			return nil
		}
	}
	return errors.New("gossip: no other cluster member seen yet")
}
