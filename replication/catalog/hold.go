package catalog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// A write that finds no leader — an election is running after the leader
// died — is held, as etcd's and Consul's servers hold theirs, until a leader
// is elected or HoldTimeout passes, instead of failing at once: a client
// (Nix retries a failed PUT, and its retry of an upload can hang, issue 8)
// should see an election as latency, not as an error. A node that cannot
// reach a majority of the voters will not see a leader elected, so it stops
// holding as soon as a probe of the voters says so, and the 503 comes fast.

// notSentError marks a write that never left this node (no leader known,
// the leader unreachable): sending it again cannot apply it twice.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

func notSent(err error) error { return &notSentError{err} }

// idempotent commands may be sent again when the fate of an earlier attempt
// is unknown (the leader died after receiving it): applying them twice
// leaves the state as applying them once. Creating or destroying a cache and
// deleting paths would report a different result the second time.
func idempotent(t cmdType) bool {
	switch t {
	case cmdPutObject, cmdPutFile, cmdConfigureCache, cmdRevokeToken, cmdSetClusterID, cmdRevokeTokens:
		return true
	}
	return false
}

// holdRetryEvery spaces the attempts of a held write.
const holdRetryEvery = 200 * time.Millisecond

// propose sends a command through Raft and waits until this node's FSM has
// applied it. This is the one write path: on a follower it is forwarded to
// the leader (when forwarding is enabled). Without a leader it holds the
// write (see above).
func (c *Catalog) propose(ctx context.Context, cmd command) (result, error) {
	var until time.Time
	for {
		r, err := c.proposeOnce(ctx, cmd)
		var ns *notSentError
		unsent := errors.As(err, &ns)
		if unsent {
			err = ns.err
		}
		if err == nil || !errors.Is(err, ErrNotLeader) || c.host == nil || (!unsent && !idempotent(cmd.Type)) {
			return r, err
		}
		if until.IsZero() {
			until = time.Now().Add(c.cfg.HoldTimeout)
		}
		if why := c.hold(ctx, until); why != nil {
			return r, fmt.Errorf("%w; %v", err, why)
		}
	}
}

// proposeOnce is one attempt: locally on the leader, forwarded otherwise.
func (c *Catalog) proposeOnce(ctx context.Context, cmd command) (result, error) {
	if c.raft.State() != raft.Leader {
		return c.forward(ctx, cmd)
	}
	return c.proposeLocal(ctx, cmd)
}

// AwaitWritable returns once this node can take a write — it leads, or
// follows a leader it hears from — holding the caller through an election
// like propose does; an error wrapping ErrNotLeader when it cannot (cut off
// from the majority, or no leader within HoldTimeout). Handlers call it
// before reading a request body: an HTTP client then gets its 503 before it
// sends the body, and Nix's retry of a PUT, which sends no body, never
// starts (see issue 8).
func (c *Catalog) AwaitWritable(ctx context.Context) error {
	if c.raft.State() == raft.Leader || c.host == nil {
		return nil
	}
	if _, id := c.raft.LeaderWithID(); id != "" && c.leaderContact() == nil {
		return nil
	}
	if why := c.waitLeader(ctx, time.Now().Add(c.cfg.HoldTimeout)); why != nil {
		return fmt.Errorf("%w: %v", ErrNotLeader, why)
	}
	return nil
}

// hold waits before another attempt: at least holdRetryEvery, and until a
// leader is known. It gives up (returning why) when until passes, ctx ends,
// or this node cannot reach a majority of the voters.
func (c *Catalog) hold(ctx context.Context, until time.Time) error {
	t := time.NewTimer(holdRetryEvery)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	return c.waitLeader(ctx, until)
}

// waitLeader waits until a leader is known and heard from (see hold).
func (c *Catalog) waitLeader(ctx context.Context, until time.Time) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		switch reached, voters := c.reachableVoters(ctx); {
		case voters == 0:
			return errors.New("this node knows no Raft configuration (it has not been added to the cluster yet)")
		case reached < Quorum(voters):
			return fmt.Errorf("this node reaches %d of the %d voters (a majority is %d): it is cut off from the majority", reached, voters, Quorum(voters))
		}
		if _, id := c.raft.LeaderWithID(); id != "" && (c.raft.State() == raft.Leader || c.leaderContact() == nil) {
			return nil
		}
		if time.Now().After(until) {
			return fmt.Errorf("no leader was elected within %v", c.cfg.HoldTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Quorum is the number of votes a Raft decision needs among n voters: the
// one formula the catalog and the cluster controller use.
func Quorum(n int) int { return n/2 + 1 }

// voterProbe caches the last count of reachable voters: concurrent held
// writes share one probe.
type voterProbe struct {
	mu              sync.Mutex
	at              time.Time
	reached, voters int
}

// probeFresh is how long a probe's answer is reused.
const probeFresh = time.Second

// reachableVoters counts the voters of the Raft configuration this node can
// reach now, itself included: each other voter is pinged over libp2p
// (QuorumProbeTimeout), in parallel.
func (c *Catalog) reachableVoters(ctx context.Context) (reached, voters int) {
	p := &c.probe
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.at) < probeFresh {
		return p.reached, p.voters
	}
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return 0, 0
	}
	var others []peer.ID
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if string(s.ID) == c.cfg.NodeID {
			reached++
			continue
		}
		if id, err := peer.Decode(string(s.ID)); err == nil {
			others = append(others, id)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, c.cfg.QuorumProbeTimeout)
	defer cancel()
	answered := make(chan bool, len(others))
	for _, id := range others {
		go func() {
			res, ok := <-ping.Ping(pctx, c.host, id)
			answered <- ok && res.Error == nil
		}()
	}
	for range others {
		if <-answered {
			reached++
		}
	}
	p.at, p.reached, p.voters = time.Now(), reached, voters
	return reached, voters
}
