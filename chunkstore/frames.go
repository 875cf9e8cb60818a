package chunkstore

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/cockroachdb/pebble/v2"
	"github.com/zeebo/blake3"
)

// Frame returns a chunk's stored zstd frame after checking its CRC-32C, for
// sending to a peer. ErrNotFound if the chunk is not stored here; ErrCorrupt
// (and the chunk is deleted) if the frame fails its check.
func (s *Store) Frame(id ChunkID) ([]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	meta, ok, err := s.getMeta(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: chunk %s", ErrNotFound, id)
	}
	frame, err := s.readFrame(id, meta, nil)
	if errors.Is(err, ErrMissingChunks) {
		return nil, fmt.Errorf("%w: chunk %s", ErrNotFound, id)
	}
	return frame, err
}

// PutFrame stores a frame received from a peer. It first decompresses it and
// checks that the bytes hash to id: on a mismatch it returns ErrCorrupt and
// stores nothing. Storing a chunk the store already has is a no-op.
func (s *Store) PutFrame(id ChunkID, frame []byte) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	if _, ok, err := s.getMeta(id); err != nil || ok {
		return err
	}
	if len(frame) > 2*s.cfg.maxChunk()+1024 {
		return fmt.Errorf("%w: chunk %s: frame of %d bytes", ErrCorrupt, id, len(frame))
	}
	buf := s.bufs.get(s.cfg.maxChunk())
	raw, err := s.decoder.DecodeAll(frame, buf[:0])
	defer s.bufs.put(buf)
	switch {
	case err != nil:
		return fmt.Errorf("%w: chunk %s does not decode: %v", ErrCorrupt, id, err)
	case len(raw) == 0 || len(raw) > s.cfg.maxChunk():
		return fmt.Errorf("%w: chunk %s decodes to %d bytes", ErrCorrupt, id, len(raw))
	case ChunkID(blake3.Sum256(raw)) != id:
		return fmt.Errorf("%w: chunk %s has other content", ErrCorrupt, id)
	}
	meta := chunkMeta{rawSize: uint32(len(raw)), frameSize: uint32(len(frame)),
		crc: crc32.Checksum(frame, castagnoli), touched: now()}
	if meta.seg, meta.off, err = s.segs.append(frame); err != nil {
		return err
	}
	defer s.segs.unpin(meta.seg, 1)
	if err := s.segs.sync(meta.seg); err != nil {
		return err
	}
	s.gc.RLock()
	defer s.gc.RUnlock()
	if err := s.db.Set(chunkKey(id), meta.encode(), pebble.Sync); err != nil {
		return fmt.Errorf("chunkstore: put frame: %w", err)
	}
	return nil
}

// readFrame reads a frame into buf (grown if needed) and checks it against
// its metadata. If compaction moved the frame since meta was read, it
// follows the index to the new place.
func (s *Store) readFrame(id ChunkID, meta chunkMeta, buf []byte) ([]byte, error) {
	sf, err := s.segs.acquire(meta.seg)
	if errors.Is(err, errSegmentGone) {
		var ok bool
		if meta, ok, err = s.getMeta(id); err == nil && !ok {
			return nil, &MissingChunksError{Chunks: []ChunkID{id}}
		} else if err == nil {
			sf, err = s.segs.acquire(meta.seg)
		}
	}
	if errors.Is(err, errSegmentGone) {
		return nil, s.dropCorrupt(id, meta, "segment file missing")
	} else if err != nil {
		return nil, err
	}
	if cap(buf) < int(meta.frameSize) {
		buf = make([]byte, meta.frameSize)
	}
	frame := buf[:meta.frameSize]
	_, err = sf.f.ReadAt(frame, meta.off)
	s.segs.release(sf)
	if errors.Is(err, io.EOF) {
		return nil, s.dropCorrupt(id, meta, "frame beyond the end of its segment")
	} else if err != nil {
		return nil, fmt.Errorf("chunkstore: read chunk %s: %w", id, err)
	}
	if crc32.Checksum(frame, castagnoli) != meta.crc {
		return nil, s.dropCorrupt(id, meta, "CRC-32C mismatch")
	}
	return frame, nil
}

// dropCorrupt deletes a chunk whose stored frame failed verification, unless
// it was replaced meanwhile, and returns the ErrCorrupt to report. A re-push
// or a peer fetch (PutFrame) stores it again.
func (s *Store) dropCorrupt(id ChunkID, bad chunkMeta, why string) error {
	s.gc.Lock()
	defer s.gc.Unlock()
	s.log.Error("corrupt chunk dropped", "chunk", id, "segment", bad.seg, "offset", bad.off, "why", why)
	if cur, ok, err := s.getMeta(id); err == nil && ok && cur.sameFrame(bad) {
		if err := s.db.Delete(chunkKey(id), pebble.Sync); err != nil {
			s.log.Error("dropping corrupt chunk failed", "chunk", id, "err", err)
		}
	}
	return fmt.Errorf("%w: chunk %s: %s", ErrCorrupt, id, why)
}
