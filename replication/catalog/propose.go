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
// waiting proposal, then, up to MaxBatch commands and MaxBatchBytes, those
// already queued and, when there are other writers about, those that arrive
// within BatchDelay; a proposal that would overflow the entry starts the
// next one (a command is at most MaxCommandBytes, so it always fits).
//
// Other writers are about when an earlier entry is still being committed,
// or when the previous entry had more than one command: concurrent clients
// fall into step with the commits (each entry's answers release them all
// at once), so their next proposals arrive together just after the
// previous entry is applied. A lone writer (Nix's narinfo PUTs come one at
// a time) is not made to wait BatchDelay for company that cannot come:
// that wait was half of a narinfo PUT's 4 ms.
func (c *Catalog) batcher() {
	defer c.wg.Done()
	var next *proposal
	lastBatch := 0 // commands in the previous entry
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
		var deadline <-chan time.Time // nil: take only what is queued
		var timer *time.Timer
		if c.inFlight.Load() > 0 || lastBatch > 1 {
			timer = time.NewTimer(c.cfg.BatchDelay)
			deadline = timer.C
		}
	gather:
		for len(batch) < c.cfg.MaxBatch {
			var p proposal
			if deadline == nil {
				select {
				case p = <-c.proposals:
				default:
					break gather
				}
			} else {
				select {
				case p = <-c.proposals:
				case <-deadline:
					break gather
				}
			}
			if entryLen(len(batch)+1, size+len(p.raw)) > MaxBatchBytes {
				next = &p
				break gather
			}
			batch = append(batch, p)
			size += len(p.raw)
		}
		if timer != nil {
			timer.Stop()
		}
		lastBatch = len(batch)
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
	c.inFlight.Add(1)
	f := c.raft.Apply(data, 30*time.Second)
	go func() {
		err := f.Error()
		c.inFlight.Add(-1)
		if err != nil {
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
