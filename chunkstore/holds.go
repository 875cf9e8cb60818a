package chunkstore

import "sync"

// holds keeps the sweep away from the chunks of uploads that have not been
// committed: every chunk an Ingest lists (written or deduplicated) is held
// from the moment the ingest first sees it, however long the upload runs.
// When Ingest returns, its hold waits for PutManifest of its manifest: the
// next sweep to start after that releases it, because that sweep's mark
// phase finds the manifest (a sweep already running may have marked before
// the manifest existed, so it must not lose the hold). An ingest that fails
// releases at once (its chunks are orphans), and one whose manifest is
// never put is released by the first sweep more than grace after Ingest
// returned: the caller gave up on it.
type holds struct {
	mu      sync.Mutex
	count   map[ChunkID]int // ingests holding each chunk
	pending []*hold         // ingests that returned, awaiting PutManifest
}

// hold is one ingest's chunks, each distinct chunk once.
type hold struct {
	chunks    []ChunkID
	manifest  ManifestID
	ended     int64 // when Ingest returned (now())
	committed bool  // PutManifest stored the manifest
}

func newHolds() *holds { return &holds{count: map[ChunkID]int{}} }

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

// release drops h's chunks.
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

// ended parks h until its manifest is put.
func (hs *holds) ended(h *hold, manifest ManifestID) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	h.manifest, h.ended = manifest, now()
	hs.pending = append(hs.pending, h)
}

// committed records that manifest is stored: the holds waiting for it can
// go at the start of the next sweep.
func (hs *holds) committed(manifest ManifestID) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for _, h := range hs.pending {
		if h.manifest == manifest {
			h.committed = true
		}
	}
}

// expire releases, at the start of a sweep, the holds whose manifest is
// stored and those that ended at or before cutoff without one.
func (hs *holds) expire(cutoff int64) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	kept := hs.pending[:0]
	for _, h := range hs.pending {
		if h.committed || h.ended <= cutoff {
			hs.releaseLocked(h)
			continue
		}
		kept = append(kept, h)
	}
	clear(hs.pending[len(kept):])
	hs.pending = kept
}
