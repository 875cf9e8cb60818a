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
// entry. Every command, local or forwarded, is validated (here, or by
// serveForward before proposeValid): an invalid one is refused
// (ErrInvalidCommand) and never reaches the log.
func (c *Catalog) proposeLocal(ctx context.Context, cmd command) (result, error) {
	raw, err := cmd.validate()
	if err != nil {
		return result{err: err}, err
	}
	return c.proposeValid(ctx, cmd.Type, raw)
}

// proposeValid is proposeLocal for a command validate accepted, as raw.
func (c *Catalog) proposeValid(ctx context.Context, typ cmdType, raw []byte) (result, error) {
	if err := c.understood(typ); err != nil {
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
//
// The wait grows with the commit time (batchDelay): a tenth of the recent
// commit time, at least BatchDelay and at most maxDelayFactor times it. Only
// entries submitted with nothing else in flight are timed: under a queue of
// entries the time is the queue's, and a longer wait would only slow a
// saturated node (200k upload-paths on one node: 3.4–4.0k paths/s timing
// every entry, 4.0–4.2k with the fixed 2 ms). On one node or a local quorum
// a commit takes a few ms and the wait stays at BatchDelay; with the quorum
// 150 ms away, clients released together by an entry's answers reach the
// leader spread over several ms (more under load), and a 2 ms window split
// each round of 8 writers into two or three entries. Waiting 15 ms adds a
// tenth to a 150 ms commit.
//
// The wait is skipped when it cannot find company: nothing is in flight, no
// entry in the last second had company (companyMemory), and the last two
// proposals each came more than the wait after the one before: a
// sequential client (Nix PUTs a path's narinfo after its NAR, so each
// narinfo PUT waited 2 ms of its ~4 ms for nobody). Then only what is
// already queued joins the entry. Any entry with company brings the wait
// back for a second: concurrent clients fall into step with the commits
// (one entry's answers release them together) and, under load, arrive a few
// ms apart; one of them going alone would fall out of step and split every
// later round (500 paths from 8 writers took 259–328 entries, not ~125,
// under the e2e suite's load with rules that looked only at the last entry,
// at what was in flight or at the arrival gaps).
func (c *Catalog) batcher() {
	defer c.wg.Done()
	var next *proposal
	var gaps arrivalGaps
	var company time.Time // when the last entry with more than one command was submitted
	for {
		var batch []proposal
		carried := next != nil // it arrived, and was counted, in the last gather
		if carried {
			batch, next = append(batch, *next), nil
		} else {
			select {
			case p := <-c.proposals:
				batch = append(batch, p)
			case <-c.stop:
				return
			}
		}
		delay := c.batchDelay()
		if !carried {
			gaps.arrived(delay)
		}
		size := len(batch[0].raw)
		var deadline <-chan time.Time // nil: take only what is queued
		var timer *time.Timer
		if gaps.sparse < 2 || c.inFlight.Load() > 0 || time.Since(company) < companyMemory {
			timer = time.NewTimer(delay)
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
			gaps.arrived(delay)
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
		if len(batch) > 1 {
			company = time.Now()
		}
		c.submit(batch)
	}
}

// maxDelayFactor caps the batcher's wait at this many times BatchDelay.
const maxDelayFactor = 10

// batchDelay is how long a proposal waits for company: a tenth of the
// recent commit time, within [BatchDelay, maxDelayFactor·BatchDelay].
func (c *Catalog) batchDelay() time.Duration {
	d := time.Duration(c.commitTime.Load()) / 10
	return min(max(d, c.cfg.BatchDelay), maxDelayFactor*c.cfg.BatchDelay)
}

// commitTook folds one lone entry's commit time into the moving average
// batchDelay reads (a weight of 1/8; concurrent updates may lose one, which
// only delays the average a little).
func (c *Catalog) commitTook(d time.Duration) {
	old := time.Duration(c.commitTime.Load())
	if old == 0 {
		c.commitTime.Store(int64(d))
		return
	}
	c.commitTime.Store(int64(old + (d-old)/8))
}

// companyMemory is how long after an entry with company the batcher waits
// for company before every entry.
const companyMemory = time.Second

// arrivalGaps counts how many proposals in a row came more than the wait
// after the one before them.
type arrivalGaps struct {
	last   time.Time
	sparse int
}

func (g *arrivalGaps) arrived(delay time.Duration) {
	now := time.Now()
	if !g.last.IsZero() && now.Sub(g.last) > delay {
		g.sparse++
	} else {
		g.sparse = 0
	}
	g.last = now
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
	alone := c.inFlight.Add(1) == 1 // its commit time is the quorum's, not a queue's
	start := time.Now()
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
		if alone {
			c.commitTook(time.Since(start))
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
