package chunkstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// SweepStats reports what a sweep removed.
type SweepStats struct {
	ManifestsDeleted, ChunksDeleted int
	// BytesFreed is the frame bytes of the deleted chunks.
	BytesFreed int64
	// SegmentsCompacted and DiskBytesFreed report the segment files that were
	// rewritten or removed, and the disk space that gave back (an addition to
	// the original API; see DESIGN.md).
	SegmentsCompacted int
	DiskBytesFreed    int64
}

// sweepBatch bounds how many deletions one exclusive section handles, so
// ingests waiting to touch a chunk wait milliseconds, not a whole sweep.
const sweepBatch = 1024

// Sweep deletes manifests for which live returns false and that were written
// more than grace ago; then chunks that no remaining manifest references and
// that were written or touched more than grace ago; then compacts segment
// files that are mostly dead. Liveness comes from the caller (the catalog);
// nothing is reference-counted, so a crash cannot leak. The chunks an
// Ingest lists are held, whatever their age, until the sweep after
// PutManifest stores its manifest (see Ingest), so an upload may run longer
// than grace; grace need only exceed the time from the end of Ingest to the
// catalog commit that makes its manifest live.
func (s *Store) Sweep(ctx context.Context, live func(ManifestID) bool, grace time.Duration) (SweepStats, error) {
	if err := s.enter(); err != nil {
		return SweepStats{}, err
	}
	defer s.exit()
	s.sweeping.Lock()
	defer s.sweeping.Unlock()
	s.touchAfter.Store(int64(grace / 4))
	cutoff := s.now() - int64(grace)
	var st SweepStats
	// Holds of ingests committed from now on are kept until the sweep ends:
	// this mark may not see their manifests.
	s.holds.sweepStarts(cutoff, int64(grace))
	defer s.holds.sweepEnds()

	// Mark: manifests to delete, and the chunks of those that stay.
	referenced := make(map[ChunkID]struct{})
	var doomed []ManifestID
	err := s.scan(prefixManifest, func(id [32]byte, v []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		var m Manifest
		written, err := decodeManifestValue(v, &m)
		if err != nil {
			s.log.Error("undecodable manifest deleted", "manifest", ManifestID(id), "err", err)
			doomed = append(doomed, ManifestID(id))
			return nil
		}
		if written <= cutoff && !live(ManifestID(id)) {
			doomed = append(doomed, ManifestID(id))
			return nil
		}
		for _, c := range m.Chunks {
			referenced[c.ID] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	for len(doomed) > 0 {
		n := min(len(doomed), sweepBatch)
		k, err := s.deleteIf(keysOf(doomed[:n], manifestKey), func(_, v []byte) bool {
			written, err := decodeManifestValue(v, nil)
			return err != nil || written <= cutoff // not re-put meanwhile
		}, nil)
		st.ManifestsDeleted += k
		if err != nil {
			return st, err
		}
		doomed = doomed[n:]
	}

	// Sweep chunks: unreferenced, held by no upload in progress and not
	// touched within grace.
	var candidates []ChunkID
	flush := func() error {
		k, err := s.deleteIf(keysOf(candidates, chunkKey), func(key, v []byte) bool {
			if s.holds.held(ChunkID(key[1:])) {
				return false
			}
			m, err := decodeMeta(v)
			return err != nil || m.touched <= cutoff // not touched meanwhile
		}, func(v []byte) {
			m, _ := decodeMeta(v)
			st.BytesFreed += int64(m.frameSize)
		})
		st.ChunksDeleted += k
		candidates = candidates[:0]
		return err
	}
	err = s.scan(prefixChunk, func(id [32]byte, v []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, ok := referenced[ChunkID(id)]; ok {
			return nil
		}
		if m, err := decodeMeta(v); err == nil && m.touched > cutoff {
			return nil
		}
		if candidates = append(candidates, ChunkID(id)); len(candidates) == sweepBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return st, err
	}
	clear(referenced)
	err = s.compact(ctx, &st)
	s.metrics.swept(st)
	// Debug: the GC pass that ran the sweep logs the same numbers at info.
	s.log.Debug("sweep done", "manifests_deleted", st.ManifestsDeleted, "chunks_deleted", st.ChunksDeleted,
		"bytes_freed", st.BytesFreed, "segments_compacted", st.SegmentsCompacted, "disk_bytes_freed", st.DiskBytesFreed)
	return st, err
}

// deleteIf deletes, under the exclusive gc lock, each key whose current
// value still satisfies stale, calling freed with the value; it returns how
// many it deleted. The re-check is what lets a concurrent touch or re-put win.
func (s *Store) deleteIf(keys [][]byte, stale func(key, value []byte) bool, freed func([]byte)) (int, error) {
	s.gc.Lock()
	defer s.gc.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	n := 0
	for _, k := range keys {
		v, closer, err := s.db.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		} else if err != nil {
			return 0, err
		}
		ok := stale(k, v)
		if ok && freed != nil {
			freed(v)
		}
		_ = closer.Close()
		if ok {
			if err := b.Delete(k, nil); err != nil {
				return 0, err
			}
			n++
		}
	}
	err := b.Commit(pebble.Sync)
	s.resolved.moved()
	if err != nil {
		return 0, fmt.Errorf("chunkstore: sweep commit: %w", err)
	}
	return n, nil
}

// keysOf maps ids to their index keys.
func keysOf[ID ~[32]byte](ids []ID, key func(ID) []byte) [][]byte {
	keys := make([][]byte, len(ids))
	for i, id := range ids {
		keys[i] = key(id)
	}
	return keys
}

// touch reports whether the chunk is stored and, if its touched time is
// older than a quarter of the sweep grace, refreshes it, so that a sweep
// cannot delete a chunk an in-flight upload has decided not to store again.
func (s *Store) touch(id ChunkID) (chunkMeta, bool, error) {
	m, ok, err := s.getMeta(id)
	if err != nil || !ok || s.now()-m.touched < s.touchAfter.Load() {
		return m, ok, err
	}
	s.gc.RLock()
	defer s.gc.RUnlock()
	if m, ok, err = s.getMeta(id); err != nil || !ok { // a sweep may have won the race
		return m, ok, err
	}
	m.touched = s.now()
	if err := s.db.Set(chunkKey(id), m.encode(), pebble.NoSync); err != nil {
		return m, false, fmt.Errorf("chunkstore: touch chunk %s: %w", id, err)
	}
	return m, true, nil
}
