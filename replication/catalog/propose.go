package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// proposal is one command waiting for its batch to commit.
type proposal struct {
	cmd  command
	done chan result
}

// proposeLocal batches cmd into the leader's next log entry.
func (c *Catalog) proposeLocal(ctx context.Context, cmd command) (result, error) {
	p := proposal{cmd: cmd, done: make(chan result, 1)}
	select {
	case c.proposals <- p:
	case <-c.stop:
		return result{}, ErrClosed
	case <-ctx.Done():
		return result{}, ctx.Err()
	}
	select {
	case r := <-p.done:
		return r, r.err
	case <-ctx.Done():
		return result{}, ctx.Err()
	}
}

// batcher gathers concurrent proposals into one log entry: it takes the first
// waiting proposal, then whatever arrives within BatchDelay, up to MaxBatch.
func (c *Catalog) batcher() {
	defer c.wg.Done()
	for {
		var batch []proposal
		select {
		case p := <-c.proposals:
			batch = append(batch, p)
		case <-c.stop:
			return
		}
		timer := time.NewTimer(c.cfg.BatchDelay)
	gather:
		for len(batch) < c.cfg.MaxBatch {
			select {
			case p := <-c.proposals:
				batch = append(batch, p)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		c.submit(batch)
	}
}

// submit appends one entry and answers its proposals when it is applied.
func (c *Catalog) submit(batch []proposal) {
	cmds := make([]command, len(batch))
	for i, p := range batch {
		cmds[i] = p.cmd
	}
	fail := func(err error) {
		for _, p := range batch {
			p.done <- result{err: err}
		}
	}
	data, err := encodeBatch(cmds)
	if err != nil {
		fail(err)
		return
	}
	f := c.raft.Apply(data, 30*time.Second)
	go func() {
		if err := f.Error(); err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
				err = fmt.Errorf("%w: %v", ErrNotLeader, err)
			}
			fail(err)
			return
		}
		res, ok := f.Response().(*batchResult)
		if !ok || len(res.results) != len(batch) {
			fail(errors.New("catalog: entry was not applied"))
			return
		}
		for i, p := range batch {
			r := res.results[i]
			r.index = f.Index()
			p.done <- r
		}
	}()
}
