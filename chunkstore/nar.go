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
}

// OpenNAR resolves a manifest from chunk metadata only. A missing manifest is
// ErrNotFound; chunks not stored here give a *MissingChunksError listing them
// (errors.Is(err, ErrMissingChunks)).
func (s *Store) OpenNAR(id ManifestID) (*NAR, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	m, _, err := s.manifest(id)
	if err != nil {
		return nil, err
	}
	n := &NAR{s: s, chunks: m.Chunks, metas: make([]chunkMeta, len(m.Chunks)), offsets: make([]int64, len(m.Chunks))}
	var missing []ChunkID
	for i, c := range m.Chunks {
		meta, ok, err := s.getMeta(c.ID)
		if err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, c.ID)
			continue
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
	return n, nil
}

// WriteRange writes served bytes [off, off+length) — a slice of the
// concatenated frames — to w. Each frame's CRC-32C is checked before any of
// it is written; a frame that fails is deleted from the store and ErrCorrupt
// returned, so the caller can abort a response that promised more bytes.
// A chunk deleted since OpenNAR gives a *MissingChunksError. A NAR may be
// read by several goroutines at once.
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
	var written int64
	for ; written < length && i < len(n.chunks); i++ {
		if err := ctx.Err(); err != nil {
			return written, err
		}
		frame, err := n.s.readFrame(n.chunks[i].ID, n.metas[i], buf)
		if err != nil {
			return written, err
		}
		buf = frame[:0]
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
