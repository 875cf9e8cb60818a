package catalog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ForwardProtocol carries a follower's write to the leader.
const ForwardProtocol protocol.ID = "/garret/catalog-forward/1"

// maxForward caps a forwarded command's size.
const maxForward = 8 << 20

// forwardReply is the leader's answer: the entry's index and the result.
type forwardReply struct {
	Index uint64 `json:"index"`
	Code  string `json:"code,omitempty"` // "", cache_exists, no_such_cache, not_leader, error
	Error string `json:"error,omitempty"`
	Count int    `json:"count"`
}

var errorCodes = map[string]error{"cache_exists": ErrCacheExists, "no_such_cache": ErrNoSuchCache, "not_leader": ErrNotLeader}

func codeOf(err error) string {
	for code, e := range errorCodes {
		if errors.Is(err, e) {
			return code
		}
	}
	if err != nil {
		return "error"
	}
	return ""
}

// EnableForwarding lets this node's followers-side writes go to the leader
// over h, and serves writes forwarded by other nodes when it leads.
func (c *Catalog) EnableForwarding(h host.Host) {
	c.host = h
	h.SetStreamHandler(ForwardProtocol, c.serveForward)
	h.SetStreamHandler(LeaveProtocol, c.serveLeave)
}

func (c *Catalog) serveForward(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(60 * time.Second))
	var cmd command
	if err := json.NewDecoder(io.LimitReader(s, maxForward)).Decode(&cmd); err != nil {
		_ = s.Reset()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var reply forwardReply
	if c.raft.State() != raft.Leader {
		reply.Code, reply.Error = "not_leader", ErrNotLeader.Error()
	} else {
		r, err := c.proposeLocal(ctx, cmd)
		reply = forwardReply{Index: r.index, Code: codeOf(err), Count: r.count}
		if err != nil {
			reply.Error = err.Error()
		}
	}
	_ = json.NewEncoder(s).Encode(reply)
}

// forward sends cmd to the leader, then waits until this node has applied
// the entry, so a client that wrote here reads its write here.
func (c *Catalog) forward(ctx context.Context, cmd command) (result, error) {
	if c.host == nil {
		return result{}, ErrNotLeader
	}
	_, leaderID := c.raft.LeaderWithID()
	if leaderID == "" {
		return result{}, fmt.Errorf("%w: no leader is known", ErrNotLeader)
	}
	pid, err := peer.Decode(string(leaderID))
	if err != nil {
		return result{}, fmt.Errorf("catalog: leader id %q: %w", leaderID, err)
	}
	s, err := c.host.NewStream(ctx, pid, ForwardProtocol)
	if err != nil {
		return result{}, fmt.Errorf("%w: cannot reach the leader: %v", ErrNotLeader, err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if err := json.NewEncoder(s).Encode(cmd); err != nil {
		return result{}, fmt.Errorf("%w: forwarding: %v", ErrNotLeader, err)
	}
	var reply forwardReply
	if err := json.NewDecoder(bufio.NewReader(io.LimitReader(s, 1<<20))).Decode(&reply); err != nil {
		return result{}, fmt.Errorf("%w: leader's answer: %v", ErrNotLeader, err)
	}
	if reply.Code == "error" {
		return result{}, fmt.Errorf("catalog: leader: %s", reply.Error)
	}
	if reply.Code == "not_leader" {
		return result{}, fmt.Errorf("%w: the leader changed while forwarding", ErrNotLeader)
	}
	if err := c.waitApplied(ctx, reply.Index); err != nil {
		return result{}, err
	}
	r := result{count: reply.Count, index: reply.Index, err: errorCodes[reply.Code]}
	return r, r.err
}

// waitApplied waits until the local FSM has applied index.
func (c *Catalog) waitApplied(ctx context.Context, index uint64) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for c.fsm.applied.Load() < index {
		select {
		case <-ctx.Done():
			return fmt.Errorf("catalog: waiting for entry %d to apply here: %w", index, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
