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
	raw  []byte // the command, as validate encoded it
	done chan result
}

// proposeLocal validates cmd and batches it into the leader's next log
// entry. Every command, local or forwarded, passes here: an invalid one is
// refused (ErrInvalidCommand) and never reaches the log.
func (c *Catalog) proposeLocal(ctx context.Context, cmd command) (result, error) {
	raw, err := cmd.validate()
	if err != nil {
		return result{err: err}, err
	}
	if err := c.understood(cmd.Type); err != nil {
		return result{err: err}, err
	}
	p := proposal{raw: raw, done: make(chan result, 1)}
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
// waiting proposal, then whatever arrives within BatchDelay, up to MaxBatch
// commands and MaxBatchBytes; a proposal that would overflow the entry starts
// the next one (a command is at most MaxCommandBytes, so it always fits).
func (c *Catalog) batcher() {
	defer c.wg.Done()
	var next *proposal
	for {
		var batch []proposal
		if next != nil {
			batch, next = append(batch, *next), nil
		} else {
			select {
			case p := <-c.proposals:
				batch = append(batch, p)
			case <-c.stop:
				return
			}
		}
		size := len(batch[0].raw)
		timer := time.NewTimer(c.cfg.BatchDelay)
	gather:
		for len(batch) < c.cfg.MaxBatch {
			select {
			case p := <-c.proposals:
				if entryLen(len(batch)+1, size+len(p.raw)) > MaxBatchBytes {
					next = &p
					break gather
				}
				batch = append(batch, p)
				size += len(p.raw)
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
	raws := make([][]byte, len(batch))
	for i, p := range batch {
		raws[i] = p.raw
	}
	fail := func(err error) {
		for _, p := range batch {
			p.done <- result{err: err}
		}
	}
	data := encodeBatch(raws)
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

// understood refuses a command type that some Raft server may not know
// (Config.MinVersion); without a version source every node is this build.
func (c *Catalog) understood(t cmdType) error {
	if c.cfg.MinVersion == nil || t.since() <= 1 {
		return nil
	}
	if v := c.cfg.MinVersion(); v < t.since() {
		return fmt.Errorf("%w (%s needs version %d; the oldest node has %d)", ErrUpgradeFirst, t, t.since(), v)
	}
	return nil
}
