package chunkstore

import "sync"

// holds keeps the sweep away from the chunks of uploads that have not been
// committed: every chunk an Ingest lists (written or deduplicated) is held
// from the moment the ingest first sees it, however long the upload runs.
//
// When Ingest returns, its hold waits for PutManifest of its manifest, which
// releases it at once, or, while a sweep is running, when that sweep ends:
// the sweep may have marked before the manifest existed and must not lose
// the hold; any later sweep finds the manifest. An ingest that fails
// releases at once (its chunks are orphans); one whose manifest is never put
// (the caller gave up after Ingest) is released once the sweep grace has
// passed since it returned, by the next sweep or the next ingest to end.
type holds struct {
	mu       sync.Mutex
	count    map[ChunkID]int        // ingests holding each chunk
	pending  map[ManifestID][]*hold // ended ingests awaiting their manifest
	order    []*hold                // the same, in the order they ended (done ones are dropped lazily)
	sweeping bool                   // a sweep is between its start and its end
	deferred []*hold                // committed during a sweep: released when it ends
	grace    int64                  // the last sweep's grace (ns); 0 before the first sweep
}

// hold is one ingest's chunks, each distinct chunk once.
type hold struct {
	chunks   []ChunkID
	manifest ManifestID
	ended    int64 // when Ingest returned (the store's clock, ns)
	done     bool  // no longer pending: committed or expired
}

func newHolds() *holds {
	return &holds{count: map[ChunkID]int{}, pending: map[ManifestID][]*hold{}}
}

// add holds id for h; callers add each distinct chunk once.
func (hs *holds) add(h *hold, id ChunkID) {
	hs.mu.Lock()
	hs.count[id]++
	hs.mu.Unlock()
	h.chunks = append(h.chunks, id)
}

// held reports whether an uncommitted ingest holds id.
func (hs *holds) held(id ChunkID) bool {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.count[id] > 0
}

// release drops the hold of an ingest that failed.
func (hs *holds) release(h *hold) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.releaseLocked(h)
}

func (hs *holds) releaseLocked(h *hold) {
	for _, id := range h.chunks {
		if hs.count[id]--; hs.count[id] <= 0 {
			delete(hs.count, id)
		}
	}
	h.chunks = nil
}

// ended parks h until its manifest is put, and expires the oldest holds
// whose manifest never came.
func (hs *holds) ended(h *hold, manifest ManifestID, at int64) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	h.manifest, h.ended = manifest, at
	hs.pending[manifest] = append(hs.pending[manifest], h)
	hs.order = append(hs.order, h)
	for len(hs.order) > 0 {
		first := hs.order[0]
		if !first.done {
			if hs.grace == 0 || first.ended > h.ended-hs.grace {
				break
			}
			hs.expireLocked(first)
		}
		hs.order[0] = nil
		hs.order = hs.order[1:]
	}
}

// expireLocked releases a pending hold whose manifest never came.
func (hs *holds) expireLocked(h *hold) {
	hs.unpendLocked(h)
	hs.releaseLocked(h)
}

// unpendLocked removes h from pending.
func (hs *holds) unpendLocked(h *hold) {
	h.done = true
	list := hs.pending[h.manifest]
	for i, x := range list {
		if x == h {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(hs.pending, h.manifest)
	} else {
		hs.pending[h.manifest] = list
	}
}

// committed records that manifest is stored: its ingests' holds go now, or
// when the running sweep ends.
func (hs *holds) committed(manifest ManifestID) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for _, h := range hs.pending[manifest] {
		h.done = true
		if hs.sweeping {
			hs.deferred = append(hs.deferred, h)
		} else {
			hs.releaseLocked(h)
		}
	}
	delete(hs.pending, manifest)
}

// sweepStarts is called by a sweep before its mark phase: it releases the
// holds that ended at or before cutoff without a manifest, and defers the
// release of holds committed from now until sweepEnds.
func (hs *holds) sweepStarts(cutoff, grace int64) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.sweeping, hs.grace = true, max(grace, 1)
	var expired []*hold
	for _, list := range hs.pending {
		for _, h := range list {
			if h.ended <= cutoff {
				expired = append(expired, h)
			}
		}
	}
	for _, h := range expired {
		hs.expireLocked(h)
	}
}

// sweepEnds releases the holds committed during the sweep.
func (hs *holds) sweepEnds() {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.sweeping = false
	for _, h := range hs.deferred {
		hs.releaseLocked(h)
	}
	clear(hs.deferred)
	hs.deferred = hs.deferred[:0]
}
