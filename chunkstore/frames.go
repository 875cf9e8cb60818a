package chunkstore

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
)

// maxChunk bounds a frame's decoded size in PutFrame.
const maxChunk = 64 << 20

// Frame returns a chunk's stored frame, CRC-verified.
func (s *Store) Frame(id ChunkID) ([]byte, error) {
	meta, ok, err := s.getMeta(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: chunk %s", ErrNotFound, id)
	}
	v, closer, err := s.verifiedFrame(id, meta)
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

// PutFrame stores a frame received from a peer after checking that it
// decodes to bytes whose BLAKE3 is id.
func (s *Store) PutFrame(id ChunkID, frame []byte) error {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxChunk))
	if err != nil {
		return err
	}
	defer dec.Close()
	raw, err := dec.DecodeAll(frame, nil)
	if err != nil {
		return fmt.Errorf("%w: chunk %s does not decode: %v", ErrCorrupt, id, err)
	}
	if ChunkID(blake3.Sum256(raw)) != id {
		return fmt.Errorf("%w: chunk %s has the wrong content", ErrCorrupt, id)
	}
	meta := chunkMeta{rawSize: uint32(len(raw)), frameSize: uint32(len(frame)), crc: crcOf(s, frame), touched: now()}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(key(prefixFrame, id), frame, nil); err != nil {
		return err
	}
	if err := b.Set(key(prefixMeta, id), meta.encode(), nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}
