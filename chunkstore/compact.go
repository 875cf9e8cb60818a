package chunkstore

import (
	"context"
	"errors"

	"github.com/cockroachdb/pebble/v2"
)

// Segment compaction gives back the space of deleted chunks (and of frames
// orphaned by failed uploads or crashes): a sealed segment whose indexed
// frames fill less than half of it has them copied to the active segment,
// their index entries switched over, and the file removed. Copy first,
// fsync, then switch the index (re-checking each entry under the exclusive
// gc lock), then unlink: a crash at any point leaves either the old entry
// pointing at the old file or the new entry at durable new bytes, and at
// worst dead bytes that a later compaction reclaims.

// compactMoveBytes bounds the frames copied before their index switch.
const compactMoveBytes = 16 << 20

type move struct {
	id       ChunkID
	old, new chunkMeta
}

func (s *Store) compact(ctx context.Context, st *SweepStats) error {
	sizes := map[uint32]int64{}
	for _, si := range s.segs.list() {
		if s.segs.idle(si.id) { // sealed, nothing waiting for the index: can only shrink
			sizes[si.id] = si.size
		}
	}
	if len(sizes) == 0 {
		s.metrics.garbage.Set(0)
		return nil
	}
	live := map[uint32]int64{}
	if err := s.scanMetas(func(_ ChunkID, m chunkMeta) error {
		if _, ok := sizes[m.seg]; ok {
			live[m.seg] += int64(m.frameSize)
		}
		return ctx.Err()
	}); err != nil {
		return err
	}
	victims := map[uint32]bool{}
	var garbage int64 // dead bytes left in the segments that stay
	for seg, size := range sizes {
		if live[seg] == 0 || live[seg]*2 < size {
			victims[seg] = true
		} else {
			garbage += size - live[seg]
		}
	}
	s.metrics.garbage.Set(float64(garbage))
	if len(victims) == 0 {
		return nil
	}
	var moves []move
	var pending int64
	err := s.scanMetas(func(id ChunkID, m chunkMeta) error {
		if !victims[m.seg] {
			return ctx.Err()
		}
		moves = append(moves, move{id: id, old: m})
		if pending += int64(m.frameSize); pending >= compactMoveBytes {
			pending = 0
			moved, err := s.relocate(moves)
			st.DiskBytesFreed -= moved
			moves = moves[:0]
			return err
		}
		return ctx.Err()
	})
	if err == nil {
		var moved int64
		moved, err = s.relocate(moves)
		st.DiskBytesFreed -= moved
	}
	if err != nil {
		return err
	}
	for seg := range victims {
		if err := s.segs.remove(seg); err != nil {
			return err
		}
		st.SegmentsCompacted++
		st.DiskBytesFreed += sizes[seg]
	}
	return nil
}

// relocate copies frames to the active segment and switches their index
// entries; it returns the bytes copied. Corrupt frames are dropped on the way.
func (s *Store) relocate(moves []move) (int64, error) {
	var buf []byte
	pinned := map[uint32]int{}
	defer func() {
		for seg, n := range pinned {
			s.segs.unpin(seg, n)
		}
	}()
	var copied int64
	kept := moves[:0]
	for _, mv := range moves {
		frame, err := s.readFrame(mv.id, mv.old, buf)
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrMissingChunks) {
			continue
		} else if err != nil {
			return copied, err
		}
		buf = frame[:0]
		mv.new = mv.old
		if mv.new.seg, mv.new.off, err = s.segs.append(frame); err != nil {
			return copied, err
		}
		pinned[mv.new.seg]++
		copied += int64(len(frame))
		kept = append(kept, mv)
	}
	for seg := range pinned {
		if err := s.segs.sync(seg); err != nil {
			return copied, err
		}
	}
	s.gc.Lock()
	defer s.gc.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	for _, mv := range kept {
		cur, ok, err := s.getMeta(mv.id)
		if err != nil {
			return copied, err
		}
		if !ok || !cur.sameFrame(mv.old) {
			continue // deleted or replaced meanwhile: the copy is dead bytes
		}
		cur.seg, cur.off = mv.new.seg, mv.new.off
		if err := b.Set(chunkKey(mv.id), cur.encode(), nil); err != nil {
			return copied, err
		}
	}
	err := b.Commit(pebble.Sync)
	s.resolved.moved()
	return copied, err
}

// scanMetas visits every chunk's index entry; undecodable ones are skipped
// (Sweep deletes them).
func (s *Store) scanMetas(fn func(ChunkID, chunkMeta) error) error {
	return s.scan(prefixChunk, func(id [32]byte, v []byte) error {
		m, err := decodeMeta(v)
		if err != nil {
			return nil
		}
		return fn(ChunkID(id), m)
	})
}
