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

// LeaveProtocol carries a departing node's "remove me" to the leader. It is
// not a catalog command: Raft membership changes never enter the FSM.
const LeaveProtocol protocol.ID = "/garret/catalog-leave/1"

type leaveRequest struct {
	ID string `json:"id"`
}

type leaveReply struct {
	Error string `json:"error,omitempty"`
}

func (c *Catalog) serveLeave(s network.Stream) {
	if !c.fromServer(s) {
		return
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(30 * time.Second))
	var req leaveRequest
	if err := json.NewDecoder(io.LimitReader(s, 4096)).Decode(&req); err != nil || req.ID != s.Conn().RemotePeer().String() {
		_ = s.Reset() // a node may only remove itself
		return
	}
	var reply leaveReply
	if c.raft.State() != raft.Leader {
		reply.Error = ErrNotLeader.Error()
	} else if err := c.raft.RemoveServer(raft.ServerID(req.ID), 0, 10*time.Second).Error(); err != nil {
		reply.Error = err.Error()
	}
	_ = json.NewEncoder(s).Encode(reply)
}

// Leave removes this node from the Raft configuration: a leader first hands
// leadership to another voter, then the node asks the leader to remove it.
// A lone node has nobody to leave to and returns nil.
func (c *Catalog) Leave(ctx context.Context) error {
	if c.host == nil {
		return nil
	}
	f := c.raft.GetConfiguration()
	if f.Error() != nil || len(f.Configuration().Servers) <= 1 {
		return nil
	}
	if c.raft.State() == raft.Leader {
		if err := c.raft.LeadershipTransfer().Error(); err != nil {
			return fmt.Errorf("catalog: leave: handing over leadership: %w", err)
		}
	}
	// Without another leader for a few election timeouts there is nobody to
	// leave to (the rest of the cluster is gone): do not hold up shutdown.
	giveUp := time.Now().Add(3 * c.cfg.ElectionTimeout)
	for {
		if _, id := c.raft.LeaderWithID(); id != "" && string(id) != c.cfg.NodeID {
			err := c.askRemoval(ctx, string(id))
			if err == nil {
				return nil
			}
			c.log.Warn("leave: removal not done yet", "err", err)
		} else if time.Now().After(giveUp) {
			return errors.New("catalog: leave: no other leader to leave to")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("catalog: leave: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Catalog) askRemoval(ctx context.Context, leader string) error {
	pid, err := peer.Decode(leader)
	if err != nil {
		return err
	}
	var reply leaveReply
	if err := p2p.Call(ctx, c.host, pid, LeaveProtocol, leaveRequest{ID: c.cfg.NodeID}, &reply); err != nil {
		return err
	}
	if reply.Error != "" {
		return fmt.Errorf("leader: %s", reply.Error)
	}
	return nil
}
