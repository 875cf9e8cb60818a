package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/garret-cache/garret/replication/p2p"
)

// RemoveProtocol carries an admin's "remove that node" to the leader. Unlike
// LeaveProtocol it names any node: the asker checked the admin's token, and
// only holders of the cluster secret can open a stream at all.
const RemoveProtocol protocol.ID = "/garret/catalog-remove/1"

var (
	// ErrNoSuchServer means the node is not in the Raft configuration.
	ErrNoSuchServer = errors.New("catalog: no such server in the Raft configuration")
	// ErrRemoveLeader means the node to remove leads: it must leave instead
	// (handing over leadership first).
	ErrRemoveLeader = errors.New("catalog: the leader cannot be removed; it must leave")
)

type removeRequest struct {
	ID string `json:"id"`
}

type removeReply struct {
	Code  string `json:"code,omitempty"` // "", no_such_server, is_leader, not_leader, error
	Error string `json:"error,omitempty"`
}

var removeCodes = map[string]error{"no_such_server": ErrNoSuchServer, "is_leader": ErrRemoveLeader, "not_leader": ErrNotLeader}

func (c *Catalog) serveRemove(s network.Stream) {
	if !c.fromServer(s) {
		return
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(30 * time.Second))
	var req removeRequest
	if err := json.NewDecoder(io.LimitReader(s, 4096)).Decode(&req); err != nil || req.ID == "" {
		_ = s.Reset()
		return
	}
	var reply removeReply
	if err := c.removeLocal(req.ID); err != nil {
		reply.Code, reply.Error = "error", err.Error()
		for code, e := range removeCodes {
			if errors.Is(err, e) {
				reply.Code = code
			}
		}
	}
	_ = json.NewEncoder(s).Encode(reply)
}

// RemoveServer removes the server id from the Raft configuration, on the
// leader (asked over RemoveProtocol when this node follows). For a node that
// will not come back; a node that is going away by itself calls Leave.
func (c *Catalog) RemoveServer(ctx context.Context, id string) error {
	if c.raft.State() == raft.Leader {
		return c.removeLocal(id)
	}
	if c.host == nil {
		return ErrNotLeader
	}
	_, leaderID := c.raft.LeaderWithID()
	if leaderID == "" {
		return fmt.Errorf("%w: no leader is known", ErrNotLeader)
	}
	pid, err := peer.Decode(string(leaderID))
	if err != nil {
		return fmt.Errorf("catalog: leader id %q: %w", leaderID, err)
	}
	var reply removeReply
	if err := p2p.Call(ctx, c.host, pid, RemoveProtocol, removeRequest{ID: id}, &reply); err != nil {
		return fmt.Errorf("%w: cannot reach the leader: %v", ErrNotLeader, err)
	}
	if e, ok := removeCodes[reply.Code]; ok {
		return fmt.Errorf("%w (leader: %s)", e, reply.Error)
	}
	if reply.Code != "" {
		return fmt.Errorf("catalog: leader: %s", reply.Error)
	}
	return nil
}

// removeLocal removes id on this node, which must lead.
func (c *Catalog) removeLocal(id string) error {
	if c.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	if id == c.cfg.NodeID {
		return ErrRemoveLeader
	}
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("catalog: configuration: %w", err)
	}
	found := false
	for _, s := range f.Configuration().Servers {
		found = found || string(s.ID) == id
	}
	if !found {
		return ErrNoSuchServer
	}
	err := c.raft.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error()
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	if err != nil {
		return fmt.Errorf("catalog: removing %s: %w", id, err)
	}
	c.log.Info("server removed from the Raft configuration on request", "peer_id", id)
	return nil
}
