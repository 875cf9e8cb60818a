package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc" // registers fastcdc-v1.0.0
	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
)

// cdcAlgorithm is pinned: chunk boundaries are an on-disk format.
const cdcAlgorithm = "fastcdc-v1.0.0"

// batchBytes is how much an ingest buffers in a pebble batch before committing.
const batchBytes = 4 << 20

// touchAge: a deduplicated chunk older than this gets its touched time
// refreshed, so a sweep (whose grace is hours) cannot delete a chunk that an
// in-flight upload relies on.
const touchAge = 3600

// IngestResult describes one ingested stream.
type IngestResult struct {
	Manifest            Manifest
	RawSize, StoredSize int64
	NewChunks           int
	DedupChunks         int
	DedupRawBytes       int64
}

// ingest is the state of one Ingest call.
type ingest struct {
	s       *Store
	ctx     context.Context
	res     *IngestResult
	slots   chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex // guards batch, sizes, err
	batch   *pebble.Batch
	sizes   map[ChunkID]uint32 // frame size of every chunk of this NAR
	pending map[ChunkID]bool   // new chunks being compressed by this ingest
	err     error
}

// Ingest reads r to EOF and stores its chunks (see the package doc). Chunks
// the store already has are not recompressed. Writes are durable on return.
func (s *Store) Ingest(ctx context.Context, r io.Reader) (*IngestResult, error) {
	in := &ingest{s: s, ctx: ctx, res: &IngestResult{}, slots: make(chan struct{}, s.cfg.MaxChunksInFlight),
		batch: s.db.NewBatch(), sizes: map[ChunkID]uint32{}, pending: map[ChunkID]bool{}}
	err := in.run(r)
	in.wg.Wait()
	in.mu.Lock()
	defer in.mu.Unlock()
	if err == nil {
		err = in.err
	}
	if err == nil {
		err = in.batch.Commit(pebble.Sync)
	} else {
		_ = in.batch.Close()
	}
	if err != nil {
		return nil, err
	}
	for _, c := range in.res.Manifest.Chunks {
		in.res.StoredSize += int64(in.sizes[c.ID])
	}
	return in.res, nil
}

func (in *ingest) run(r io.Reader) error {
	cfg := in.s.cfg
	head := make([]byte, cfg.NarSizeThreshold)
	n, err := io.ReadFull(r, head)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		if n > 0 {
			return in.add(head[:n])
		}
		return nil
	case err != nil:
		return err
	}
	ch, err := chunkers.NewChunker(cdcAlgorithm, io.MultiReader(bytes.NewReader(head), r),
		&chunkers.ChunkerOpts{MinSize: cfg.MinSize, NormalSize: cfg.AvgSize, MaxSize: cfg.MaxSize})
	if err != nil {
		return fmt.Errorf("chunkstore: chunker: %w", err)
	}
	for {
		data, err := ch.Next()
		if len(data) > 0 {
			if aerr := in.add(data); aerr != nil {
				return aerr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := in.failed(); err != nil {
			return err
		}
	}
}

func (in *ingest) failed() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.err != nil {
		return in.err
	}
	return in.ctx.Err()
}

// add records one chunk and, if it is new, hands a copy to a compressor.
func (in *ingest) add(data []byte) error {
	id := ChunkID(blake3.Sum256(data))
	size := uint32(len(data))
	in.res.Manifest.Chunks = append(in.res.Manifest.Chunks, Chunk{ID: id, Size: size})
	in.res.RawSize += int64(size)
	in.mu.Lock()
	_, known := in.sizes[id]
	inFlight := in.pending[id]
	in.mu.Unlock()
	if known || inFlight {
		in.res.DedupChunks++
		in.res.DedupRawBytes += int64(size)
		return nil
	}
	meta, ok, err := in.s.getMeta(id)
	if err != nil {
		return err
	}
	if ok {
		in.res.DedupChunks++
		in.res.DedupRawBytes += int64(size)
		in.mu.Lock()
		in.sizes[id] = meta.frameSize
		if t := now(); meta.touched+touchAge < t {
			meta.touched = t
			err = in.batch.Set(key(prefixMeta, id), meta.encode(), nil)
		}
		in.mu.Unlock()
		return err
	}
	in.res.NewChunks++
	if err := in.s.inflight.Acquire(in.ctx, int64(size)); err != nil {
		return err
	}
	buf := in.s.getBuf(len(data))
	copy(buf, data)
	in.mu.Lock()
	in.pending[id] = true
	in.mu.Unlock()
	in.slots <- struct{}{}
	in.wg.Add(1)
	go in.compress(id, buf)
	return nil
}

// compress encodes one chunk as a zstd frame and adds it to the batch.
func (in *ingest) compress(id ChunkID, raw []byte) {
	defer func() {
		in.s.putBuf(raw)
		in.s.inflight.Release(int64(len(raw)))
		<-in.slots
		in.wg.Done()
	}()
	// Compression is CPU-bound: more than GOMAXPROCS at once only adds
	// encoders (≈1 MiB each) to memory, so slots are store-wide.
	in.s.compress <- struct{}{}
	enc := in.s.encoders.Get().(*zstd.Encoder)
	frame := enc.EncodeAll(raw, make([]byte, 0, len(raw)/2+64))
	in.s.encoders.Put(enc)
	<-in.s.compress
	meta := chunkMeta{rawSize: uint32(len(raw)), frameSize: uint32(len(frame)), crc: crcOf(in.s, frame), touched: now()}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.err != nil {
		return
	}
	in.sizes[id] = meta.frameSize
	delete(in.pending, id)
	if err := in.batch.Set(key(prefixFrame, id), frame, nil); err != nil {
		in.err = err
		return
	}
	if err := in.batch.Set(key(prefixMeta, id), meta.encode(), nil); err != nil {
		in.err = err
		return
	}
	if in.batch.Len() >= batchBytes {
		if err := in.batch.Commit(pebble.NoSync); err != nil {
			in.err = err
			return
		}
		_ = in.batch.Close()
		in.batch = in.s.db.NewBatch()
	}
}

func (s *Store) getBuf(n int) []byte {
	if b, ok := s.bufs.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:n]
	}
	return make([]byte, n, max(n, s.cfg.MaxSize))
}

func (s *Store) putBuf(b []byte) {
	if cap(b) >= s.cfg.MaxSize {
		s.bufs.Put(&b)
	}
}
