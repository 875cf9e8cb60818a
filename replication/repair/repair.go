package repair

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/durable"
)

// Store is the chunk store a Scrubber checks (*chunkstore.Store).
type Store interface {
	Scrub(ctx context.Context, rate int64) (chunkstore.ScrubStats, error)
}

// Copier fetches chunks from peers, verifies and stores them
// (*syncer.Copier).
type Copier interface {
	CopyChunks(ctx context.Context, ids []chunkstore.ChunkID) error
}

var _ Store = (*chunkstore.Store)(nil)

// Config tunes a Scrubber.
type Config struct {
	// Node names this node in reports.
	Node string
	// Interval is the time between periodic scrubs; 0: none (on demand
	// only).
	Interval time.Duration
	// Rate is the frame bytes per second a scrub reads (default
	// chunkstore.DefaultScrubRate).
	Rate int64
	// StateFile keeps the time of the last complete scrub ("": not kept;
	// the first periodic scrub is then an Interval after start).
	StateFile string
	Log       *slog.Logger
	// Metrics is the node's registry (nil: not exported).
	Metrics prometheus.Registerer
}

// Deps are what a Scrubber works through.
type Deps struct {
	Store Store
	// Copier fetches dropped chunks again; nil on a node without peers.
	Copier Copier
}

// repairBatch is how many dropped chunks one copy asks for.
const repairBatch = 256

// maxListed bounds the bad chunk ids a report lists.
const maxListed = 100

// Scrubber runs scrubs and repairs what they drop.
type Scrubber struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	repaired, unrepaired prometheus.Counter

	mu   sync.Mutex
	last time.Time // end of the last complete scrub
}

// New builds a Scrubber and reads the time of the last complete scrub.
func New(cfg Config, deps Deps) (*Scrubber, error) {
	if deps.Store == nil {
		return nil, errors.New("repair: no chunk store")
	}
	if cfg.Interval < 0 || cfg.Rate < 0 {
		return nil, fmt.Errorf("repair: interval %v and rate %d must not be negative", cfg.Interval, cfg.Rate)
	}
	if cfg.Rate == 0 {
		cfg.Rate = chunkstore.DefaultScrubRate
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Scrubber{cfg: cfg, deps: deps, log: cfg.Log,
		repaired: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "garret", Subsystem: "repair", Name: "repaired_chunks_total",
			Help: "Chunks a scrub dropped that were fetched again from a peer."}),
		unrepaired: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "garret", Subsystem: "repair", Name: "unrepaired_chunks_total",
			Help: "Chunks a scrub dropped that no peer had (missing here until a read or a re-push brings them)."}),
	}
	if cfg.Metrics != nil {
		for _, c := range []prometheus.Collector{s.repaired, s.unrepaired} {
			if err := cfg.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("repair: metrics: %w", err)
			}
		}
	}
	if err := s.loadLast(); err != nil {
		return nil, err
	}
	return s, nil
}

// Run scrubs every Interval until ctx is done; nothing without an interval.
func (s *Scrubber) Run(ctx context.Context) {
	if s.cfg.Interval <= 0 {
		return
	}
	for {
		s.mu.Lock()
		wait := min(time.Until(s.last.Add(s.cfg.Interval)), s.cfg.Interval) // a clock set back waits no longer
		s.mu.Unlock()
		if wait > 0 {
			if !sleep(ctx, wait) {
				return
			}
			continue // an on-demand scrub may have moved the next one
		}
		res, err := s.ScrubNow(ctx, 0)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, chunkstore.ErrScrubRunning):
			// An on-demand scrub: when it completes it moves the next one.
			if !sleep(ctx, busyRetry) {
				return
			}
		case err != nil:
			s.log.Error("periodic scrub failed; trying again after the interval", "err", err)
			s.markDone()
		default:
			s.log.Info("periodic scrub done", "chunks", res.Chunks, "bad", res.Bad, "repaired", res.Repaired, "unrepaired", res.Unrepaired)
		}
	}
}

// busyRetry is how long the periodic scrub waits for another one to end.
const busyRetry = time.Minute

// sleep waits d; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ScrubNow scrubs the store at rate bytes per second (0: Config.Rate) and
// fetches the chunks it dropped from peers. chunkstore.ErrScrubRunning if a
// scrub is already running.
func (s *Scrubber) ScrubNow(ctx context.Context, rate int64) (v1.ClusterScrubResponse, error) {
	if rate <= 0 {
		rate = s.cfg.Rate
	}
	start := time.Now()
	st, err := s.deps.Store.Scrub(ctx, rate)
	res := v1.ClusterScrubResponse{Node: s.cfg.Node, Chunks: st.Chunks, Bytes: st.Bytes, Bad: st.Bad}
	for _, id := range st.Dropped[:min(len(st.Dropped), maxListed)] {
		res.BadChunks = append(res.BadChunks, id.String())
	}
	// What a cut-short scrub dropped is repaired all the same.
	res.Repaired, res.Unrepaired = s.repair(ctx, st.Dropped)
	res.TookMs = time.Since(start).Milliseconds()
	if err != nil {
		return res, err
	}
	s.markDone()
	return res, nil
}

// repair fetches dropped chunks from peers, in batches; a batch that fails
// is tried chunk by chunk, so one chunk no peer has does not hold back the
// others.
func (s *Scrubber) repair(ctx context.Context, ids []chunkstore.ChunkID) (repaired, unrepaired int64) {
	if len(ids) == 0 {
		return 0, 0
	}
	if s.deps.Copier == nil {
		for _, id := range ids {
			s.log.Error("bad chunk dropped; this node has no peers to fetch it from: a re-push of a NAR that uses it stores it again", "chunk", id)
		}
		s.unrepaired.Add(float64(len(ids)))
		return 0, int64(len(ids))
	}
	for len(ids) > 0 {
		batch := ids[:min(len(ids), repairBatch)]
		ids = ids[len(batch):]
		if s.deps.Copier.CopyChunks(ctx, batch) == nil {
			repaired += int64(len(batch))
			continue
		}
		for i, id := range batch {
			if ctx.Err() != nil {
				s.log.Error("repair stopped; the rest of the dropped chunks stay missing until a read or a re-push brings them",
					"chunks", len(batch)-i+len(ids), "err", ctx.Err())
				unrepaired += int64(len(batch) - i + len(ids))
				ids = nil
				break
			}
			if err := s.deps.Copier.CopyChunks(ctx, []chunkstore.ChunkID{id}); err != nil {
				s.log.Error("bad chunk dropped and not repaired: no peer could provide it (reads fetch it from a peer that gets it later, or a re-push stores it)",
					"chunk", id, "err", err)
				unrepaired++
			} else {
				repaired++
			}
		}
	}
	s.repaired.Add(float64(repaired))
	s.unrepaired.Add(float64(unrepaired))
	if repaired > 0 {
		s.log.Info("bad chunks repaired from peers", "chunks", repaired)
	}
	return repaired, unrepaired
}

// markDone records now as the end of the last scrub, in memory and in the
// state file.
func (s *Scrubber) markDone() {
	now := time.Now()
	s.mu.Lock()
	s.last = now
	s.mu.Unlock()
	if s.cfg.StateFile == "" {
		return
	}
	if err := durable.WriteFile(s.cfg.StateFile, []byte(now.UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
		s.log.Warn("recording the scrub's time failed; after a restart the next scrub may come early", "err", err)
	}
}

// loadLast reads the state file; a missing one is started now, so the
// first periodic scrub comes an interval after the node first ran.
func (s *Scrubber) loadLast() error {
	s.last = time.Now()
	if s.cfg.StateFile == "" {
		return nil
	}
	b, err := os.ReadFile(s.cfg.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		if s.cfg.Interval > 0 {
			s.markDone()
		}
		return nil
	} else if err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
	if err != nil {
		s.log.Warn("unreadable scrub state file; counting the interval from now", "file", s.cfg.StateFile, "err", err)
		return nil
	}
	s.last = t
	return nil
}
