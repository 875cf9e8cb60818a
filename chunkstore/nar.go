package chunkstore

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/klauspost/compress/zstd"
)

// NAR is a manifest resolved against the local chunk index: every frame's
// size and served offset are known, so Size is exact before a byte is sent.
type NAR struct {
	// Size is the served (zstd) size: the sum of the frame sizes.
	Size int64
	// RawSize is the uncompressed NAR size.
	RawSize int64

	s       *Store
	chunks  []Chunk
	metas   []chunkMeta
	offsets []int64 // served offset of each frame
	// remote serves the chunks marked pending (not stored here when the NAR
	// was opened); their metas hold only the remote frame size.
	remote  Remote
	pending []bool
	// refetch, if set, replaces a stored frame that fails while streaming.
	refetch func(ctx context.Context, ids []ChunkID) (Remote, error)
}

// Remote supplies frames this store lacks (from peers): the size of each
// frame when a NAR is opened, so the served size is exact before the first
// byte, and the bytes when a stream reaches them.
type Remote interface {
	// FrameSize is the size of the frame Frames will yield for id.
	FrameSize(id ChunkID) (uint32, bool)
	// Frames yields the frames of ids in that order.
	Frames(ctx context.Context, ids []ChunkID) (FrameIter, error)
}

// FrameIter yields frames in the order they were asked for. Each returned
// slice is the caller's to keep.
type FrameIter interface {
	Next() ([]byte, error)
	Close() error
}

// remoteBatchBytes is how many fetched frame bytes a stream keeps before
// storing them (one segment sync and one index commit per batch).
const remoteBatchBytes = 4 << 20

// OpenNAR resolves a manifest from chunk metadata only. A missing manifest is
// ErrNotFound; chunks not stored here give a *MissingChunksError listing them
// (errors.Is(err, ErrMissingChunks)).
func (s *Store) OpenNAR(id ManifestID) (*NAR, error) { return s.OpenNARFrom(id, nil) }

// OpenNARFrom is OpenNAR for a NAR whose chunks may partly be elsewhere:
// chunks not stored here are served from remote (frame sizes asked at once,
// bytes when the stream reaches them, each frame verified against its chunk
// id before it is written, and kept). Chunks neither here nor known to
// remote give a *MissingChunksError.
func (s *Store) OpenNARFrom(id ManifestID, remote Remote) (*NAR, error) {
	return s.OpenNARWith(id, Sources{Remote: remote})
}

// Sources are where a NAR's chunks may come from besides this store.
type Sources struct {
	// Remote serves the chunks not stored here (see OpenNARFrom).
	Remote Remote
	// Refetch finds chunks elsewhere (in a cluster, p2p.Fetcher.Remote on
	// the node's peers). When a stored frame fails its check while the NAR
	// streams (it is dropped), the chunk's frame is fetched through it,
	// verified, stored in place of the bad one (a repair) and served, so the
	// stream goes on with correct bytes. Nil: the stream fails with
	// ErrCorrupt, as it does when no peer has the chunk.
	Refetch func(ctx context.Context, ids []ChunkID) (Remote, error)
}

// OpenNARWith is OpenNAR with the sources in src.
func (s *Store) OpenNARWith(id ManifestID, src Sources) (*NAR, error) {
	remote := src.Remote
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	if rn, ok := s.resolved.get(id); ok {
		return &NAR{Size: rn.size, RawSize: rn.rawSize, s: s, chunks: rn.chunks, metas: rn.metas, offsets: rn.offsets,
			refetch: src.Refetch}, nil
	}
	gen := s.resolved.gen.Load() // before the index is read (resolved.go)
	m, _, err := s.manifest(id)
	if err != nil {
		return nil, err
	}
	n := &NAR{s: s, chunks: m.Chunks, metas: make([]chunkMeta, len(m.Chunks)), offsets: make([]int64, len(m.Chunks)),
		refetch: src.Refetch}
	var missing []ChunkID
	for i, c := range m.Chunks {
		meta, ok, err := s.getMeta(c.ID)
		if err != nil {
			return nil, err
		}
		if !ok {
			size, known := uint32(0), false
			if remote != nil {
				size, known = remote.FrameSize(c.ID)
			}
			if !known {
				missing = append(missing, c.ID)
				continue
			}
			if n.pending == nil {
				n.pending, n.remote = make([]bool, len(m.Chunks)), remote
			}
			n.pending[i], meta = true, chunkMeta{rawSize: c.Size, frameSize: size}
		}
		if meta.rawSize != c.Size {
			return nil, fmt.Errorf("%w: chunk %s is %d bytes, manifest %s says %d", ErrCorrupt, c.ID, meta.rawSize, id, c.Size)
		}
		n.metas[i], n.offsets[i] = meta, n.Size
		n.Size += int64(meta.frameSize)
		n.RawSize += int64(c.Size)
	}
	if len(missing) > 0 {
		return nil, &MissingChunksError{Chunks: missing}
	}
	if n.pending == nil {
		s.resolved.add(&resolvedNAR{id: id, gen: gen, chunks: n.chunks, metas: n.metas, offsets: n.offsets, size: n.Size, rawSize: n.RawSize})
	}
	return n, nil
}

// WriteRange writes served bytes [off, off+length) — a slice of the
// concatenated frames — to w. Each frame's CRC-32C is checked before any of
// it is written; a frame that fails is deleted from the store and, unless
// Sources.Refetch repairs it, ErrCorrupt returned, so the caller can abort a
// response that promised more bytes. A chunk deleted since OpenNAR (and not
// repaired) gives a *MissingChunksError. A NAR may be read by several
// goroutines at once.
func (n *NAR) WriteRange(ctx context.Context, w io.Writer, off, length int64) (int64, error) {
	if off < 0 || length < 0 || off > n.Size || length > n.Size-off {
		return 0, fmt.Errorf("chunkstore: range [%d, +%d) outside %d bytes", off, length, n.Size)
	}
	if err := n.s.enter(); err != nil {
		return 0, err
	}
	defer n.s.exit()
	i := sort.Search(len(n.offsets), func(i int) bool { return n.offsets[i]+int64(n.metas[i].frameSize) > off })
	buf := n.s.bufs.get(n.s.cfg.maxChunk())
	defer func() { n.s.bufs.put(buf) }()
	rf, err := n.openRemote(ctx, i, off+length)
	if err != nil {
		return 0, err
	}
	defer rf.close()
	zc, zeroCopy := w.(io.ReaderFrom)
	files := segReaders{s: n.s}
	defer files.close()
	checked := -1 // a frame a short sendfile ended in: served the checked way
	var written int64
	for ; written < length && i < len(n.chunks); i++ {
		if err := ctx.Err(); err != nil {
			return written, err
		}
		if zeroCopy && i != checked {
			sent, size, err := n.sendRun(zc, &files, i, off+written, length-written)
			written += sent
			if err != nil {
				return written, err
			}
			if size > 0 {
				j := i
				for j+1 < len(n.chunks) && n.offsets[j+1] <= off+written {
					j++
				}
				if sent < size {
					checked = j
				}
				i = j - 1 // the loop's i++ brings it to the frame holding the next byte
				continue
			}
		}
		var frame []byte
		if n.pending != nil && n.pending[i] {
			if frame, err = rf.next(n.chunks[i], n.metas[i].frameSize); err != nil {
				return written, err
			}
		} else {
			var at chunkMeta
			if frame, at, err = n.s.readFrameAt(n.chunks[i].ID, n.metas[i], buf); err == nil {
				buf = frame[:0]
				n.s.verified.add(at) // where it was read (compaction may have moved it)
			} else if frame, err = n.repair(ctx, i, err); err != nil {
				return written, err
			}
		}
		start := off + written - n.offsets[i]
		end := min(int64(len(frame)), start+length-written)
		k, err := w.Write(frame[start:end])
		written += int64(k)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// remoteFrames fetches a stream's pending frames, verifies and keeps them.
type remoteFrames struct {
	s       *Store
	it      FrameIter
	batch   []VerifiedFrame
	batched int
}

// openRemote starts fetching the pending frames among chunks [from, …)
// that start before served offset end; nil iter when there are none.
func (n *NAR) openRemote(ctx context.Context, from int, end int64) (*remoteFrames, error) {
	rf := &remoteFrames{s: n.s}
	if n.pending == nil {
		return rf, nil
	}
	var ids []ChunkID
	for k := from; k < len(n.chunks) && n.offsets[k] < end; k++ {
		if n.pending[k] {
			ids = append(ids, n.chunks[k].ID)
		}
	}
	if len(ids) == 0 {
		return rf, nil
	}
	it, err := n.remote.Frames(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("%w: fetching %d chunks: %v", ErrMissingChunks, len(ids), err)
	}
	rf.it = it
	return rf, nil
}

// next is the verified frame of chunk c, which must be size bytes (what
// the served size was computed with).
func (rf *remoteFrames) next(c Chunk, size uint32) ([]byte, error) {
	if rf.it == nil {
		return nil, fmt.Errorf("chunkstore: chunk %s is not fetched", c.ID)
	}
	frame, err := rf.it.Next()
	if err != nil {
		return nil, fmt.Errorf("%w: fetching chunk %s: %v", ErrMissingChunks, c.ID, err)
	}
	if len(frame) != int(size) {
		return nil, fmt.Errorf("%w: chunk %s: the peer sent a %d-byte frame, announced %d", ErrCorrupt, c.ID, len(frame), size)
	}
	v, err := rf.s.verifyFrame(c.ID, frame)
	if err != nil {
		return nil, err
	}
	if v.rawSize != c.Size {
		return nil, fmt.Errorf("%w: chunk %s is %d bytes, the manifest says %d", ErrCorrupt, c.ID, v.rawSize, c.Size)
	}
	rf.batch = append(rf.batch, v)
	if rf.batched += len(frame); rf.batched >= remoteBatchBytes {
		rf.flush()
	}
	return frame, nil
}

// flush keeps the fetched frames. Failing to keep them does not fail the
// stream: the bytes were verified, and the next read fetches them again.
func (rf *remoteFrames) flush() {
	if len(rf.batch) == 0 {
		return
	}
	if err := rf.s.putVerifiedFrames(rf.batch); err != nil {
		rf.s.log.Warn("keeping fetched chunks failed", "chunks", len(rf.batch), "err", err)
	}
	rf.batch, rf.batched = rf.batch[:0], 0
}

func (rf *remoteFrames) close() {
	rf.flush()
	if rf.it != nil {
		_ = rf.it.Close()
	}
}

// RawReader streams the decompressed NAR (for small auxiliary files). Read
// errors include those of WriteRange; Close releases the decoder.
func (n *NAR) RawReader(ctx context.Context) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		_, err := n.WriteRange(ctx, pw, 0, n.Size)
		pw.CloseWithError(err)
	}()
	dec, err := zstd.NewReader(pr, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(uint64(n.s.cfg.maxChunk())*2))
	if err != nil {
		pr.CloseWithError(err)
		return io.NopCloser(errReader{err})
	}
	return &rawReader{dec: dec, pr: pr}
}

type rawReader struct {
	dec *zstd.Decoder
	pr  *io.PipeReader
}

func (r *rawReader) Read(p []byte) (int, error) { return r.dec.Read(p) }

func (r *rawReader) Close() error {
	r.dec.Close()
	return r.pr.Close()
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
