package chunkstore

import (
	"container/list"
	"sync"
	"sync/atomic"
)

// Resolved NARs. Opening a NAR reads its manifest and every chunk's index
// entry: one pebble point read per chunk, which under wrk was a fifth of a
// node's CPU per NAR served (the rest being sendfile). A NAR whose chunks
// are all here is therefore kept resolved, least recently used out, up to
// resolvedMaxChunks chunks in all (about 80 bytes each).
//
// An entry is valid while the store's layout generation has not moved. It
// moves after every change that can make a resolved frame location wrong:
// a sweep's deletions, a compaction's moves, a corrupt frame dropped. New
// chunks (an ingest, PutVerifiedFrames, a repair after a drop) do not move
// it: they cannot change a NAR already wholly here. (Two writers racing on
// one chunk leave the loser's copy as dead bytes, still intact until a
// compaction, which moves the generation.) The generation is read before
// the index is, and moved after the change commits, so an entry resolved
// across a change is never taken as current.
// A NAR served from a stale entry would still be served right (WriteRange
// follows moved frames and repairs missing ones); the generation keeps that
// path for the rare case.

// resolvedMaxChunks bounds the chunks of all kept NARs together; a NAR of
// more than a quarter of it (over 1 GiB at the average chunk) is not kept.
const resolvedMaxChunks = 64 << 10

// resolvedNAR is the part of a NAR that OpenNAR computes from the index;
// its slices are shared by every NAR opened from it and never written.
type resolvedNAR struct {
	id            ManifestID
	gen           uint64
	chunks        []Chunk
	metas         []chunkMeta
	offsets       []int64
	size, rawSize int64
}

type resolvedNARs struct {
	gen    atomic.Uint64 // the store's layout generation
	mu     sync.Mutex
	chunks int // held, over all entries
	lru    *list.List
	byID   map[ManifestID]*list.Element
}

func newResolvedNARs() *resolvedNARs {
	return &resolvedNARs{lru: list.New(), byID: map[ManifestID]*list.Element{}}
}

// moved records a change to the frame layout: every kept entry is stale.
func (r *resolvedNARs) moved() { r.gen.Add(1) }

// get returns id's entry if it is current.
func (r *resolvedNARs) get(id ManifestID) (*resolvedNAR, bool) {
	gen := r.gen.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.byID[id]
	if !ok {
		return nil, false
	}
	rn := e.Value.(*resolvedNAR)
	if rn.gen != gen {
		r.remove(e)
		return nil, false
	}
	r.lru.MoveToFront(e)
	return rn, true
}

// add keeps rn (resolved at generation rn.gen), evicting the least
// recently used entries to stay within resolvedMaxChunks.
func (r *resolvedNARs) add(rn *resolvedNAR) {
	w := len(rn.chunks) + 1
	if w > resolvedMaxChunks/4 || rn.gen != r.gen.Load() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.byID[rn.id]; ok {
		r.remove(e)
	}
	for r.chunks+w > resolvedMaxChunks {
		r.remove(r.lru.Back())
	}
	r.byID[rn.id] = r.lru.PushFront(rn)
	r.chunks += w
}

func (r *resolvedNARs) remove(e *list.Element) {
	rn := r.lru.Remove(e).(*resolvedNAR)
	delete(r.byID, rn.id)
	r.chunks -= len(rn.chunks) + 1
}
