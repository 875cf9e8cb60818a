package chunkstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
)

// Repair on read: a stored frame that fails while a NAR streams has been
// dropped by readFrame; with Sources.Refetch the stream asks for the chunk
// elsewhere, verifies the frame it gets (decompressed, BLAKE3, raw size
// against the manifest), stores it and serves it in place of the bad one.
// The response's length was computed from the bad frame's size, so the good
// frame must fill exactly that many bytes (fitFrame).

// skippableMagic starts a zstd skippable frame (RFC 8878 §3.1.2): a 4-byte
// magic number, a 4-byte little-endian length, then that many bytes that
// every decoder skips.
const (
	skippableMagic  = 0x184D2A50
	skippableHeader = 8
)

// repair answers a stored frame that failed with cause — ErrCorrupt (the
// frame was dropped), or ErrMissingChunks (a scrub or another read dropped
// it since the NAR was opened) — by fetching chunk i again through the
// NAR's Refetch. Without Refetch, or for any other cause, cause is returned.
func (n *NAR) repair(ctx context.Context, i int, cause error) ([]byte, error) {
	if n.refetch == nil || !(errors.Is(cause, ErrCorrupt) || errors.Is(cause, ErrMissingChunks)) {
		return nil, cause
	}
	c, size := n.chunks[i], n.metas[i].frameSize
	// Another read may have repaired it since.
	if meta, ok, err := n.s.getMeta(c.ID); err == nil && ok && !meta.sameFrame(n.metas[i]) {
		if frame, err := n.s.readFrame(c.ID, meta, nil); err == nil {
			return fitFrame(c.ID, frame, size)
		}
	}
	frame, err := n.fetchOne(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("%w; repairing it from a peer failed: %v", cause, err)
	}
	v, err := n.s.verifyFrame(c.ID, frame)
	if err != nil {
		return nil, fmt.Errorf("%w; the peer's frame is bad too: %v", cause, err)
	}
	if v.rawSize != c.Size {
		return nil, fmt.Errorf("%w; the peer's frame of chunk %s is %d bytes, the manifest says %d", cause, c.ID, v.rawSize, c.Size)
	}
	if err := n.s.putVerifiedFrames([]VerifiedFrame{v}); err != nil {
		n.s.log.Warn("storing a repaired chunk failed; it is served anyway", "chunk", c.ID, "err", err)
	} else {
		n.s.metrics.readRepairs.Inc()
		n.s.log.Info("bad chunk repaired from a peer while serving it", "chunk", c.ID, "cause", cause)
	}
	return fitFrame(c.ID, frame, size)
}

// fetchOne gets chunk c's frame through the NAR's Refetch.
func (n *NAR) fetchOne(ctx context.Context, c Chunk) ([]byte, error) {
	ids := []ChunkID{c.ID}
	remote, err := n.refetch(ctx, ids)
	if err != nil {
		return nil, err
	}
	it, err := remote.Frames(ctx, ids)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	return it.Next()
}

// fitFrame makes a good frame fill exactly size bytes, the size of the bad
// frame the response's length was computed with. Frames of a chunk are
// usually the same on every node (the syncer copies them as they are), so
// the size matches; a smaller frame is followed by a skippable frame of the
// difference, which zstd decoders (Nix's too) pass over. A larger one, or one
// smaller by less than a skippable frame's header, cannot be served in that
// length: ErrCorrupt (it is stored, so the next read serves it at its size).
func fitFrame(id ChunkID, frame []byte, size uint32) ([]byte, error) {
	switch d := int(size) - len(frame); {
	case d == 0:
		return frame, nil
	case d >= skippableHeader:
		out := make([]byte, size)
		copy(out, frame)
		binary.LittleEndian.PutUint32(out[len(frame):], skippableMagic)
		binary.LittleEndian.PutUint32(out[len(frame)+4:], uint32(d-skippableHeader))
		return out, nil
	}
	return nil, fmt.Errorf("%w: chunk %s: its good frame is %d bytes, the response was sized for %d; the next read serves it",
		ErrCorrupt, id, len(frame), size)
}
