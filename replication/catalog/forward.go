package catalog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/garret-cache/garret/replication/p2p"
)

// ForwardProtocol carries a follower's write to the leader.
const ForwardProtocol protocol.ID = "/garret/catalog-forward/1"

// maxForward caps what the leader reads of a forwarded command: the largest
// command the log takes, and room for an encoding that differs a little.
const maxForward = MaxCommandBytes + 64<<10

// forwardReply is the leader's answer: the entry's index and the result.
type forwardReply struct {
	Index uint64 `json:"index"`
	Code  string `json:"code,omitempty"` // "", cache_exists, no_such_cache, not_leader, invalid, too_many_rules, upgrade_first, error
	Error string `json:"error,omitempty"`
	Count int    `json:"count"`
}

var errorCodes = map[string]error{"cache_exists": ErrCacheExists, "no_such_cache": ErrNoSuchCache, "not_leader": ErrNotLeader, "invalid": ErrInvalidCommand, "too_many_rules": ErrTooManyRevocationRules,
	"upgrade_first": ErrUpgradeFirst}

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

// serveOn makes h the catalog's way to the other nodes: its own writes go
// to the leader over h, and it serves writes forwarded by other nodes when
// it leads, leaves, removals, and questions about its progress.
func (c *Catalog) serveOn(h host.Host) {
	c.host = h
	h.SetStreamHandler(ForwardProtocol, c.serveForward)
	h.SetStreamHandler(LeaveProtocol, c.serveLeave)
	h.SetStreamHandler(RemoveProtocol, c.serveRemove)
	h.SetStreamHandler(ProgressProtocol, c.serveProgress)
}

func (c *Catalog) serveForward(s network.Stream) {
	if !c.fromServer(s) {
		return
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(60 * time.Second))
	var reply forwardReply
	cmd, err := readForwarded(s)
	var raw []byte
	if err == nil {
		// Invalid is invalid on any server: said so whoever leads, so the
		// sender does not look for a leader to send it to again.
		raw, err = cmd.validate()
	}
	switch {
	case err != nil:
		reply.Code, reply.Error = "invalid", err.Error()
	case c.raft.State() != raft.Leader:
		reply.Code, reply.Error = "not_leader", ErrNotLeader.Error()
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, err := c.proposeValid(ctx, cmd.Type, raw)
		reply = forwardReply{Index: r.index, Code: codeOf(err), Count: r.count}
		if err != nil {
			reply.Error = err.Error()
		}
	}
	_ = json.NewEncoder(s).Encode(reply)
}

// readForwarded decodes one forwarded command (at most maxForward bytes).
// Whether it may enter the log is validate's check.
func readForwarded(r io.Reader) (command, error) {
	lr := &io.LimitedReader{R: r, N: maxForward}
	var cmd command
	if err := json.NewDecoder(lr).Decode(&cmd); err != nil {
		if lr.N <= 0 {
			return command{}, fmt.Errorf("%w: more than %d bytes", ErrInvalidCommand, MaxCommandBytes)
		}
		return command{}, fmt.Errorf("%w: does not decode: %v", ErrInvalidCommand, err)
	}
	return cmd, nil
}

// Forwarding bounds: opening a stream to the leader, and the whole exchange.
// A forward also ends as soon as Raft on this node loses the leader it was
// sent to (see watchLeader), so a partition is a prompt 503, not a hang.
const (
	forwardDialTimeout = 5 * time.Second
	forwardTimeout     = 30 * time.Second
)

// forward sends cmd to the leader, then waits until this node has applied
// the entry, so a client that wrote here reads its write here.
func (c *Catalog) forward(ctx context.Context, cmd command) (result, error) {
	if c.host == nil {
		return result{}, ErrNotLeader
	}
	if _, err := cmd.validate(); err != nil {
		return result{}, err // the leader would refuse it: do not send it
	}
	_, leaderID := c.raft.LeaderWithID()
	if leaderID == "" {
		return result{}, notSent(fmt.Errorf("%w: no leader is known (an election is running, or this node cannot reach a majority of the voters)", ErrNotLeader))
	}
	if err := c.leaderContact(); err != nil {
		return result{}, notSent(err)
	}
	pid, err := peer.Decode(string(leaderID))
	if err != nil {
		return result{}, fmt.Errorf("catalog: leader id %q: %w", leaderID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	dctx, dcancel := context.WithTimeout(ctx, forwardDialTimeout)
	s, err := p2p.OpenStream(dctx, c.host, pid, ForwardProtocol)
	dcancel()
	if err != nil {
		return result{}, notSent(fmt.Errorf("%w: cannot reach the leader: %v", ErrNotLeader, err))
	}
	defer s.Close()
	dl, _ := ctx.Deadline()
	_ = s.SetDeadline(dl)
	lost := c.watchLeader(ctx, leaderID, s)
	var reply forwardReply
	err = json.NewEncoder(s).Encode(cmd)
	if err == nil {
		err = json.NewDecoder(bufio.NewReader(io.LimitReader(s, 1<<20))).Decode(&reply)
	}
	if err != nil {
		if p2p.Refused(err) { // the leader's handler never ran: safe to send again
			return result{}, notSent(fmt.Errorf("%w: the leader refused the stream (resource limit): %v", ErrNotLeader, err))
		}
		if why := lost(); why != nil {
			return result{}, why
		}
		return result{}, fmt.Errorf("%w: forwarding to the leader: %v", ErrNotLeader, err)
	}
	if reply.Code == "invalid" {
		return result{}, fmt.Errorf("%w (refused by the leader): %s", ErrInvalidCommand, strings.TrimPrefix(reply.Error, ErrInvalidCommand.Error()+": "))
	}
	if reply.Code == "error" {
		return result{}, fmt.Errorf("catalog: leader: %s", reply.Error)
	}
	if reply.Code == "not_leader" {
		return result{}, fmt.Errorf("%w: the leader changed while forwarding", ErrNotLeader)
	}
	if err := c.WaitApplied(ctx, reply.Index); err != nil {
		return result{}, err
	}
	r := result{count: reply.Count, index: reply.Index, err: errorCodes[reply.Code]}
	return r, r.err
}

// leaderContact fails when this follower has not heard from its leader for
// longer than the heartbeat timeout: the leader is likely on the other side
// of a partition, and Raft will notice soon; waiting would only delay the 503.
func (c *Catalog) leaderContact() error {
	last := c.raft.LastContact()
	if last.IsZero() {
		return nil // not contacted since start: the leader is new to us, try it
	}
	if since := time.Since(last); since > c.cfg.HeartbeatTimeout {
		return fmt.Errorf("%w: no contact with the leader for %v (this node may be cut off from the majority)", ErrNotLeader, since.Round(time.Millisecond))
	}
	return nil
}

// watchLeader resets s once Raft here stops following leaderID or loses
// contact with it, until ctx ends. The returned func tells whether it did.
func (c *Catalog) watchLeader(ctx context.Context, leaderID raft.ServerID, s network.Stream) func() error {
	var why atomic.Pointer[error]
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var err error
			if _, id := c.raft.LeaderWithID(); id != leaderID {
				err = fmt.Errorf("%w: the leader changed while forwarding", ErrNotLeader)
			} else {
				err = c.leaderContact()
			}
			if err != nil {
				why.Store(&err)
				_ = s.Reset()
				return
			}
		}
	}()
	return func() error {
		if p := why.Load(); p != nil {
			return *p
		}
		return nil
	}
}
