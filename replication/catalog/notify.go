package catalog

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// notifier wakes every waiter at once: wait returns a channel that the next
// broadcast closes. No polling, and no waiter can miss an advance that
// happens between its check and its wait, since it takes the channel first.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) broadcast() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// WaitApplied waits until this node's state has applied the log entry at
// index (or a later one): a follower's read-your-write after a forwarded
// write, or a syncer waiting for changes after its cursor.
func (c *Catalog) WaitApplied(ctx context.Context, index uint64) error {
	for {
		advanced := c.fsm.advanced.wait()
		if c.fsm.applied.Load() >= index {
			return nil
		}
		select {
		case <-advanced:
		case <-c.stop:
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("catalog: waiting for entry %d to apply here (applied %d): %w", index, c.fsm.applied.Load(), ctx.Err())
		}
	}
}

// WaitLeader waits until the cluster has a leader this node knows of. It
// observes Raft's leader changes rather than polling.
func (c *Catalog) WaitLeader(ctx context.Context) error {
	ch := make(chan raft.Observation, 4)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	c.raft.RegisterObserver(obs)
	defer c.raft.DeregisterObserver(obs)
	// An observation dropped because ch was full is harmless: the leader
	// is checked again after every wake-up, and once a second in case the
	// leader was known before the observer was registered… and missed.
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if addr, _ := c.raft.LeaderWithID(); addr != "" {
			return nil
		}
		select {
		case <-ch:
		case <-t.C:
		case <-c.stop:
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("catalog: waiting for a leader: %w", ctx.Err())
		}
	}
}
