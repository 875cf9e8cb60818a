// Package syncer copies pushed data to the nodes placement names, in the
// background: when an object or file commits, every node that should hold
// its manifest fetches the manifest and the chunks it lacks from its peers
// (nearest first, every frame verified), so only missing chunks cross the
// link. On start it reads the whole catalog once and fetches what it
// lacks (a node that was down, wiped or is new converges by itself, and
// re-fetches nothing it has); then it follows the catalog's change log.
// It never blocks a push or a read: fetches run on their own workers, and
// what fails (no peer has it yet) is retried later.
package syncer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/replication/catalog"
	"github.com/garret-cache/garret/replication/placement"
)

// Catalog is what the syncer reads from the catalog.
type Catalog interface {
	ForEachStored(fn func(id chunkstore.ManifestID, size int64, at time.Time) error) error
	ChangesHead() catalog.Cursor
	Changes(after catalog.Cursor, limit int) ([]catalog.Change, catalog.Cursor, error)
	WaitChanges(ctx context.Context, after catalog.Cursor) error
}

// Fetcher brings manifests and frames from peers (p2p.Fetcher).
type Fetcher interface {
	FetchManifest(ctx context.Context, id chunkstore.ManifestID) error
	Remote(ctx context.Context, missing []chunkstore.ChunkID) (chunkstore.Remote, error)
}

// Config tunes the syncer.
type Config struct {
	// CopiesPerRegion is [cluster] copies-per-region (placement.All: every
	// node holds everything).
	CopiesPerRegion int
	// Workers is how many manifests are fetched at once (default 4).
	Workers int
	// RetryEvery is how often failed fetches are tried again (default 30 s).
	RetryEvery time.Duration
	// MembersEvery is how often an idle syncer looks for a change of the
	// cluster's members, which moves its share (default 5 s).
	MembersEvery time.Duration
	Log          *slog.Logger
}

// Deps are what the syncer works through.
type Deps struct {
	Catalog Catalog
	Store   *chunkstore.Store
	Fetcher Fetcher
	// Self is this node; Members the live members placement may choose
	// (this node included).
	Self    placement.Node
	Members func() []placement.Node
	// Limit caps the node's frame bytes in flight (NewLimit), shared with
	// the node's other copiers; nil: no cap.
	Limit *semaphore.Weighted
}

// Stats is what the syncer has done since it started.
type Stats struct {
	Fetched      int64 // manifests made complete here
	FramesStored int64
	FrameBytes   int64
	Failed       int64 // fetch attempts that failed (retried later)
	Pending      int   // manifests waiting to be fetched or retried
}

// Syncer is one node's copier.
type Syncer struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	copier *Copier

	queue   chan chunkstore.ManifestID
	mu      sync.Mutex
	busy    map[chunkstore.ManifestID]bool // queued or being fetched
	retry   map[chunkstore.ManifestID]bool // failed, to try again
	waiting map[chunkstore.ManifestID]due  // busy or retry: since when, how big
	stats   Stats
	rate    rate
	// scanning is set during a pass over the whole catalog; scanned counts
	// the manifests it has read.
	scanning bool
	scanned  int
}

// due is a manifest this node should hold and does not yet: when it was
// pushed (or first seen here) and its stored size (0: not known yet).
type due struct {
	since time.Time
	size  int64
}

// New makes a syncer; Run runs it.
func New(cfg Config, deps Deps) (*Syncer, error) {
	if deps.Catalog == nil || deps.Store == nil || deps.Fetcher == nil || deps.Members == nil {
		return nil, errors.New("syncer: needs a catalog, a store, a fetcher and members")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.RetryEvery <= 0 {
		cfg.RetryEvery = 30 * time.Second
	}
	if cfg.MembersEvery <= 0 {
		cfg.MembersEvery = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Syncer{cfg: cfg, deps: deps, log: cfg.Log, queue: make(chan chunkstore.ManifestID, 1024),
		busy: map[chunkstore.ManifestID]bool{}, retry: map[chunkstore.ManifestID]bool{}, waiting: map[chunkstore.ManifestID]due{}}
	s.copier = &Copier{Store: deps.Store, Fetcher: deps.Fetcher, OnFrames: s.countFrames, Limit: deps.Limit}
	return s, nil
}

// Stats returns a copy of the counters.
func (s *Syncer) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Pending = len(s.busy) + len(s.retry)
	return st
}

// Run syncs until ctx ends: a full pass over the catalog, then the change
// log from the head taken before the pass (changes seen twice are harmless:
// what is local is not fetched again).
func (s *Syncer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.worker(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.retryLoop(ctx)
	}()
	err := s.follow(ctx)
	wg.Wait()
	return err
}

// follow is the full pass, then the change log; a cursor the log no longer
// reaches means another full pass.
func (s *Syncer) follow(ctx context.Context) error {
	for {
		cur := s.deps.Catalog.ChangesHead()
		members := s.deps.Members()
		s.setScanning(true)
		err := s.deps.Catalog.ForEachStored(func(id chunkstore.ManifestID, size int64, at time.Time) error {
			s.mu.Lock()
			s.scanned++
			s.mu.Unlock()
			s.offer(ctx, members, id, due{since: at, size: size})
			return ctx.Err()
		})
		s.setScanning(false)
		if err != nil {
			return err
		}
		if err := s.followChanges(ctx, cur, members); err != nil {
			return err
		}
	}
}

// followChanges offers what the change log adds after cur. It returns nil
// when a full pass is needed: the log moved past cur, or placement's
// members changed (a node joined or left, so this node's share moved).
func (s *Syncer) followChanges(ctx context.Context, cur catalog.Cursor, members []placement.Node) error {
	for {
		chs, next, err := s.deps.Catalog.Changes(cur, 256)
		if errors.Is(err, catalog.ErrCursorTooOld) {
			s.log.Warn("syncer: the change log moved past this node; reading the whole catalog again", "err", err)
			return nil
		} else if err != nil {
			return err
		}
		now := s.deps.Members()
		if s.cfg.CopiesPerRegion != placement.All && !sameMembers(members, now) {
			s.log.Info("syncer: the cluster's members changed; reading the whole catalog for this node's new share")
			return nil
		}
		for _, ch := range chs {
			if (ch.Op == catalog.OpPutObject || ch.Op == catalog.OpPutFile) && !ch.Manifest.IsZero() {
				s.offer(ctx, now, ch.Manifest, due{since: ch.At, size: ch.Size})
			}
		}
		cur = next
		if len(chs) == 0 {
			// Wake for new changes, and now and then to look at the members.
			wctx, cancel := context.WithTimeout(ctx, s.cfg.MembersEvery)
			err := s.deps.Catalog.WaitChanges(wctx, cur)
			cancel()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil && !errors.Is(err, catalog.ErrCursorTooOld) && !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
		}
	}
}

// sameMembers reports whether a and b are the same nodes in the same regions.
func sameMembers(a, b []placement.Node) bool {
	if len(a) != len(b) {
		return false
	}
	set := make(map[placement.Node]bool, len(a))
	for _, n := range a {
		set[n] = true
	}
	for _, n := range b {
		if !set[n] {
			return false
		}
	}
	return true
}

// offer queues id if placement gives it to this node and it is not queued
// already; it waits for room in the queue (back-pressure on the reader of
// the catalog, never on pushes).
func (s *Syncer) offer(ctx context.Context, members []placement.Node, id chunkstore.ManifestID, d due) {
	if !placement.Holds(id[:], members, s.cfg.CopiesPerRegion, s.deps.Self.ID) {
		s.mu.Lock()
		if s.retry[id] { // placement moved it elsewhere
			delete(s.retry, id)
			delete(s.waiting, id)
		}
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	if s.busy[id] {
		s.mu.Unlock()
		return
	}
	s.busy[id] = true
	delete(s.retry, id)
	if _, ok := s.waiting[id]; !ok {
		if d.since.IsZero() {
			d.since = time.Now()
		}
		s.waiting[id] = d
	}
	s.mu.Unlock()
	select {
	case s.queue <- id:
	case <-ctx.Done():
	}
}

func (s *Syncer) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-s.queue:
			err := s.fetch(ctx, id)
			s.mu.Lock()
			delete(s.busy, id)
			if err != nil && ctx.Err() == nil {
				s.retry[id] = true
				s.stats.Failed++
			} else if err == nil {
				delete(s.waiting, id)
			}
			s.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				s.log.Debug("syncer: fetch failed; will retry", "manifest", id, "err", err)
			}
		}
	}
}

func (s *Syncer) retryLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.RetryEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		ids := make([]chunkstore.ManifestID, 0, len(s.retry))
		for id := range s.retry {
			ids = append(ids, id)
		}
		s.mu.Unlock()
		members := s.deps.Members()
		for _, id := range ids {
			s.offer(ctx, members, id, due{})
		}
	}
}

// fetch makes manifest id and all its chunks local, counting what it
// copied in the stats.
func (s *Syncer) fetch(ctx context.Context, id chunkstore.ManifestID) error {
	copied, err := s.copier.CopyManifest(ctx, id)
	if copied {
		s.mu.Lock()
		s.stats.Fetched++
		s.mu.Unlock()
	}
	return err
}

func (s *Syncer) countFrames(n int, bytes int64) {
	s.mu.Lock()
	s.stats.FramesStored += int64(n)
	s.stats.FrameBytes += bytes
	s.rate.add(time.Now(), bytes)
	s.mu.Unlock()
}

func (s *Syncer) setScanning(on bool) {
	s.mu.Lock()
	s.scanning = on
	if on {
		s.scanned = 0
	}
	s.mu.Unlock()
}
