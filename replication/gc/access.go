package gc

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/catalog"
)

// DefaultAccessFlush is how often a node folds the downloads it served
// into the catalog: one Raft write per cache per interval at most, never one
// per download. Retention periods are days, so a minute's delay is noise.
const DefaultAccessFlush = time.Minute

// DefaultResolution is how fresh an object's last use in the catalog may
// be for a download not to be recorded again: one touch per object per node
// per hour at most, however popular the object. Retention periods are days;
// a cache with a period shorter than a day gets a finer resolution, a 24th
// of its period.
const DefaultResolution = time.Hour

// MaxPendingAccesses bounds the downloads a node keeps between flushes
// (distinct objects; each takes about 100 bytes). Past it, a flush starts
// early, and what still does not fit is dropped and counted: the object's
// access time then lags by one flush, which retention tolerates.
const MaxPendingAccesses = 100_000

// flushTimeout bounds one flush's proposals.
const flushTimeout = 30 * time.Second

// Toucher folds access times into the catalog (catalog.TouchObjects).
type Toucher func(ctx context.Context, cache nixid.CacheName, at time.Time, hashes []nixid.StorePathHash) (int, error)

type access struct {
	cache nixid.CacheName
	hash  nixid.StorePathHash
}

// Accesses collects the NAR downloads this node serves until they are
// folded into the catalog, where retention reads them: a download on any
// node keeps an object alive. Recording is a map insert; the catalog sees
// one touch-objects command per cache per flush.
type Accesses struct {
	Touch Toucher
	Log   *slog.Logger
	// PeriodOf is a cache's retention period (Retention.Period of it; 0:
	// none), for caches whose period calls for a resolution finer than
	// DefaultResolution; nil: DefaultResolution for every cache.
	PeriodOf func(nixid.CacheName) time.Duration
	// Now is the clock (time.Now when nil); Max bounds the pending set
	// (MaxPendingAccesses when 0).
	Now func() time.Time
	Max int

	mu      sync.Mutex
	pending map[access]struct{}
	full    chan struct{} // a flush is wanted before the interval ends
	metrics *metrics      // nil: none
}

func (a *Accesses) max() int {
	if a.Max > 0 {
		return a.Max
	}
	return MaxPendingAccesses
}

func (a *Accesses) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Accesses) initLocked() {
	if a.pending == nil {
		a.pending = make(map[access]struct{})
	}
	if a.full == nil {
		a.full = make(chan struct{}, 1)
	}
}

// Record notes a download of an object's NAR, unless the catalog's last
// use of it (lastUsed: its push or its last folded download) is within the
// resolution. It never blocks on the catalog.
func (a *Accesses) Record(cache nixid.CacheName, hash nixid.StorePathHash, lastUsed time.Time) {
	if age := a.now().Sub(lastUsed); age < DefaultResolution {
		if a.PeriodOf == nil {
			return
		}
		if p := a.PeriodOf(cache); p <= 0 || age < p/24 {
			return
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.initLocked()
	k := access{cache, hash}
	if _, ok := a.pending[k]; ok {
		return
	}
	if len(a.pending) >= a.max() {
		a.metrics.droppedAccess()
		return
	}
	a.pending[k] = struct{}{}
	a.metrics.setPending(len(a.pending))
	if len(a.pending) >= a.max()/2 {
		select {
		case a.full <- struct{}{}:
		default:
		}
	}
}

// Pending is how many distinct downloads wait for the next flush.
func (a *Accesses) Pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.pending)
}

// Flush folds every pending download into the catalog, stamped with the
// time of the flush (every one happened before it). What the catalog does
// not take (no leader, a partition) is put back for the next flush, within
// the bound. It returns the first error.
func (a *Accesses) Flush(ctx context.Context) error {
	a.mu.Lock()
	batch := a.pending
	a.pending = nil
	a.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	at := a.now().UTC()
	byCache := make(map[nixid.CacheName][]nixid.StorePathHash)
	for k := range batch {
		byCache[k.cache] = append(byCache[k.cache], k.hash)
	}
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	var firstErr error
	for cache, hashes := range byCache {
		for part := range slices.Chunk(hashes, catalog.MaxObjectsPerCommand) {
			if firstErr == nil {
				if _, firstErr = a.Touch(ctx, cache, at, part); firstErr == nil {
					continue
				}
			}
			a.putBack(cache, part) // after the first refusal, the rest waits too
		}
	}
	a.mu.Lock()
	a.metrics.setPending(len(a.pending))
	a.mu.Unlock()
	return firstErr
}

func (a *Accesses) putBack(cache nixid.CacheName, hashes []nixid.StorePathHash) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.initLocked()
	for _, h := range hashes {
		if len(a.pending) >= a.max() {
			a.metrics.droppedAccess()
			continue
		}
		a.pending[access{cache, h}] = struct{}{}
	}
}

// Run flushes every interval, and early when the pending set is half
// full, until ctx is done. A node stopping cleanly flushes once more itself,
// while it is still a member (node.Shutdown).
func (a *Accesses) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultAccessFlush
	}
	a.mu.Lock()
	a.initLocked()
	full := a.full
	a.mu.Unlock()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-full:
		}
		a.logFlush(a.Flush(ctx))
	}
}

func (a *Accesses) logFlush(err error) {
	if err == nil {
		return
	}
	log := a.Log
	if log == nil {
		log = slog.Default()
	}
	// Kept for the next flush; a partition or an election is no news.
	log.Debug("download times not folded into the catalog yet", "pending", a.Pending(), "err", err)
}
