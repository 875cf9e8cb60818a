package chunkstore

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/zstd"
)

func crcOf(s *Store, b []byte) uint32 { return crc32.Checksum(b, s.crc) }

// NAR is a manifest resolved against local chunks: frame sizes and offsets
// are known, so Size is exact before any byte is sent.
type NAR struct {
	Size, RawSize int64 // served (zstd) bytes; uncompressed bytes
	s             *Store
	chunks        []Chunk
	metas         []chunkMeta
	offsets       []int64 // served offset of each frame
}

// OpenNAR resolves a manifest. A missing manifest is ErrNotFound; chunks that
// are not local give a *MissingChunksError.
func (s *Store) OpenNAR(id ManifestID) (*NAR, error) {
	m, err := s.Manifest(id)
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
		n.metas[i], n.offsets[i] = meta, n.Size
		n.Size += int64(meta.frameSize)
		n.RawSize += int64(c.Size)
	}
	if len(missing) > 0 {
		return nil, &MissingChunksError{Chunks: missing}
	}
	return n, nil
}

// WriteRange writes served bytes [off, off+length) to w, verifying each
// frame's CRC first. A corrupt frame is deleted and ErrCorrupt returned.
func (n *NAR) WriteRange(ctx context.Context, w io.Writer, off, length int64) (int64, error) {
	if off < 0 || length < 0 || off+length > n.Size {
		return 0, fmt.Errorf("chunkstore: range [%d, %d) outside %d bytes", off, off+length, n.Size)
	}
	i := sort.Search(len(n.offsets), func(i int) bool { return n.offsets[i]+int64(n.metas[i].frameSize) > off })
	var written int64
	for ; written < length && i < len(n.chunks); i++ {
		if err := ctx.Err(); err != nil {
			return written, err
		}
		frame, closer, err := n.s.verifiedFrame(n.chunks[i].ID, n.metas[i])
		if err != nil {
			return written, err
		}
		start := off + written - n.offsets[i]
		end := min(int64(len(frame)), start+length-written)
		k, err := w.Write(frame[start:end])
		closer.Close()
		written += int64(k)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// RawReader decompresses the whole NAR (for small auxiliary files).
func (n *NAR) RawReader(ctx context.Context) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		_, err := n.WriteRange(ctx, pw, 0, n.Size)
		pw.CloseWithError(err)
	}()
	dec, err := zstd.NewReader(pr, zstd.WithDecoderConcurrency(1))
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

// verifiedFrame reads a frame and checks it against its metadata's CRC.
func (s *Store) verifiedFrame(id ChunkID, meta chunkMeta) ([]byte, io.Closer, error) {
	v, closer, err := s.db.Get(key(prefixFrame, id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: chunk %s", ErrMissingChunks, id)
	} else if err != nil {
		return nil, nil, err
	}
	if uint32(len(v)) != meta.frameSize || crcOf(s, v) != meta.crc {
		closer.Close()
		s.log.Error("corrupt chunk dropped", "chunk", id)
		b := s.db.NewBatch()
		_ = b.Delete(key(prefixFrame, id), nil)
		_ = b.Delete(key(prefixMeta, id), nil)
		_ = b.Commit(pebble.Sync)
		return nil, nil, fmt.Errorf("%w: chunk %s", ErrCorrupt, id)
	}
	return v, closer, nil
}
