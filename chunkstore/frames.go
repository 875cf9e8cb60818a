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

// FrameSize is the size of a chunk's stored frame; false if it is not here.
func (s *Store) FrameSize(id ChunkID) (uint32, bool, error) {
	if err := s.enter(); err != nil {
		return 0, false, err
	}
	defer s.exit()
	meta, ok, err := s.getMeta(id)
	return meta.frameSize, ok, err
}

// PutFrame stores a frame received from a peer. It first decompresses it and
// checks that the bytes hash to id: on a mismatch it returns ErrCorrupt and
// stores nothing. Storing a chunk the store already has is a no-op.
func (s *Store) PutFrame(id ChunkID, frame []byte) error {
	v, err := s.VerifyFrame(id, frame)
	if err != nil {
		return err
	}
	return s.PutVerifiedFrames([]VerifiedFrame{v})
}

// VerifiedFrame is a frame that VerifyFrame accepted for its id.
type VerifiedFrame struct {
	ID      ChunkID
	Frame   []byte
	rawSize uint32
}

// VerifyFrame decompresses a frame from a peer and checks that its bytes
// hash to id. ErrCorrupt on any mismatch.
func (s *Store) VerifyFrame(id ChunkID, frame []byte) (VerifiedFrame, error) {
	if err := s.enter(); err != nil {
		return VerifiedFrame{}, err
	}
	defer s.exit()
	return s.verifyFrame(id, frame)
}

// verifyFrame is VerifyFrame inside enter/exit.
func (s *Store) verifyFrame(id ChunkID, frame []byte) (VerifiedFrame, error) {
	n, err := s.decodeCheck(id, frame)
	return VerifiedFrame{ID: id, Frame: frame, rawSize: uint32(n)}, err
}

func (s *Store) decodeCheck(id ChunkID, frame []byte) (int, error) {
	if len(frame) > 2*s.cfg.maxChunk()+1024 {
		return 0, fmt.Errorf("%w: chunk %s: frame of %d bytes", ErrCorrupt, id, len(frame))
	}
	buf := s.bufs.get(s.cfg.maxChunk())
	raw, err := s.decoder.DecodeAll(frame, buf[:0])
	defer func() { s.bufs.put(buf) }()
	switch {
	case err != nil:
		return 0, fmt.Errorf("%w: chunk %s does not decode: %v", ErrCorrupt, id, err)
	case len(raw) == 0 || len(raw) > s.cfg.maxChunk():
		return 0, fmt.Errorf("%w: chunk %s decodes to %d bytes", ErrCorrupt, id, len(raw))
	case ChunkID(blake3.Sum256(raw)) != id:
		return 0, fmt.Errorf("%w: chunk %s has other content", ErrCorrupt, id)
	}
	return len(raw), nil
}

// PutVerifiedFrames stores frames that VerifyFrame accepted, with one
// segment sync and one index commit for all of them (the segment bytes are
// durable before any index entry points at them). Chunks already stored are
// skipped.
func (s *Store) PutVerifiedFrames(frames []VerifiedFrame) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	return s.putVerifiedFrames(frames)
}

// putVerifiedFrames is PutVerifiedFrames inside enter/exit.
func (s *Store) putVerifiedFrames(frames []VerifiedFrame) error {
	type placed struct {
		id   ChunkID
		meta chunkMeta
	}
	var done []placed
	pinned := map[uint32]int{}
	defer func() {
		for seg, n := range pinned {
			s.segs.unpin(seg, n)
		}
	}()
	for _, f := range frames {
		if _, ok, err := s.getMeta(f.ID); err != nil {
			return err
		} else if ok {
			continue
		}
		if f.rawSize == 0 {
			return fmt.Errorf("chunkstore: chunk %s was not verified", f.ID)
		}
		var err error
		meta := chunkMeta{rawSize: f.rawSize, frameSize: uint32(len(f.Frame)), crc: crc32.Checksum(f.Frame, castagnoli), touched: s.now()}
		if meta.seg, meta.off, err = s.segs.append(f.Frame); err != nil {
			return err
		}
		s.metrics.wrote(len(f.Frame))
		pinned[meta.seg]++
		done = append(done, placed{f.ID, meta})
	}
	if len(done) == 0 {
		return nil
	}
	for seg := range pinned {
		if err := s.segs.sync(seg); err != nil {
			return err
		}
	}
	s.gc.RLock()
	defer s.gc.RUnlock()
	b := s.db.NewBatch()
	defer b.Close()
	for _, p := range done {
		if err := b.Set(chunkKey(p.id), p.meta.encode(), nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("chunkstore: put frames: %w", err)
	}
	return nil
}

// readFrame reads a frame into buf (grown if needed) and checks it against
// its metadata. If compaction moved the frame since meta was read, it
// follows the index to the new place.
func (s *Store) readFrame(id ChunkID, meta chunkMeta, buf []byte) ([]byte, error) {
	frame, _, err := s.readFrameAt(id, meta, buf)
	return frame, err
}

// readFrameAt is readFrame that also returns the index entry the frame was
// read by (newer than meta if compaction moved the frame).
func (s *Store) readFrameAt(id ChunkID, meta chunkMeta, buf []byte) ([]byte, chunkMeta, error) {
	sf, err := s.segs.acquire(meta.seg)
	if errors.Is(err, errSegmentGone) {
		var ok bool
		if meta, ok, err = s.getMeta(id); err == nil && !ok {
			return nil, meta, &MissingChunksError{Chunks: []ChunkID{id}}
		} else if err == nil {
			sf, err = s.segs.acquire(meta.seg)
		}
	}
	if errors.Is(err, errSegmentGone) {
		return nil, meta, s.dropCorrupt(id, meta, "segment file missing")
	} else if err != nil {
		return nil, meta, err
	}
	if cap(buf) < int(meta.frameSize) {
		buf = make([]byte, meta.frameSize)
	}
	frame := buf[:meta.frameSize]
	_, err = sf.f.ReadAt(frame, meta.off)
	s.segs.release(sf)
	if errors.Is(err, io.EOF) {
		return nil, meta, s.dropCorrupt(id, meta, "frame beyond the end of its segment")
	} else if err != nil {
		return nil, meta, fmt.Errorf("chunkstore: read chunk %s: %w", id, err)
	}
	if crc32.Checksum(frame, castagnoli) != meta.crc {
		return nil, meta, s.dropCorrupt(id, meta, "CRC-32C mismatch")
	}
	s.metrics.framesRead.Inc()
	s.metrics.frameBytesRead.Add(float64(len(frame)))
	return frame, meta, nil
}

// dropCorrupt deletes a chunk whose stored frame failed verification, unless
// it was replaced meanwhile, and returns the ErrCorrupt to report. A re-push
// or a peer fetch (PutFrame) stores it again.
func (s *Store) dropCorrupt(id ChunkID, bad chunkMeta, why string) error {
	s.gc.Lock()
	defer s.gc.Unlock()
	s.log.Error("corrupt chunk dropped", "chunk", id, "segment", bad.seg, "offset", bad.off, "why", why)
	s.metrics.corrupt.Inc()
	s.verified.drop(bad)
	if cur, ok, err := s.getMeta(id); err == nil && ok && cur.sameFrame(bad) {
		if err := s.db.Delete(chunkKey(id), pebble.Sync); err != nil {
			s.log.Error("dropping corrupt chunk failed", "chunk", id, "err", err)
		}
		s.resolved.moved()
	}
	return fmt.Errorf("%w: chunk %s: %s", ErrCorrupt, id, why)
}
