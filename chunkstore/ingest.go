package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc" // registers fastcdc-v1.0.0
	"github.com/cockroachdb/pebble/v2"
	"github.com/zeebo/blake3"
)

// cdcAlgorithm is pinned by name: chunk boundaries are an on-disk format.
const cdcAlgorithm = "fastcdc-v1.0.0"

// syncEvery: after this many new frame bytes an ingest fsyncs the segments
// it wrote and commits their index entries (NoSync), so a long upload's
// chunks become visible to other uploads and its pending batch stays small.
const syncEvery = 16 << 20

// IngestResult describes one ingested stream.
type IngestResult struct {
	// Manifest lists the chunks in stream order; store it with PutManifest.
	Manifest Manifest
	// RawSize is the bytes read; StoredSize the sum of the frame sizes of
	// the manifest's chunks as stored here (what OpenNAR's Size will be).
	RawSize, StoredSize int64
	// NewChunks were compressed and written; DedupChunks were already
	// stored (or repeated earlier in the same stream).
	NewChunks, DedupChunks int
	// DedupRawBytes is the raw size of the deduplicated chunks.
	DedupRawBytes int64
}

// ingest is the state of one Ingest call; only its goroutine touches it.
type ingest struct {
	s           *Store
	ctx         context.Context
	res         IngestResult
	frames      map[ChunkID]uint32 // frame size of each distinct chunk; 0 while compressing
	done        chan result
	outstanding int
	batch       *pebble.Batch  // index entries of frames already in segments
	pinned      map[uint32]int // frames per segment not yet committed
	unsynced    int64          // frame bytes since the last commit
	committed   bool           // a NoSync commit happened
	err         error          // first failed result
	hold        *hold          // the chunks listed so far, kept from the sweep
}

// Ingest reads r to EOF, cuts it into chunks (whole if shorter than
// NarSizeThreshold, else FastCDC from the start), names each by BLAKE3, and
// stores the chunks the store lacks as one zstd frame each; chunks it has are
// not recompressed. All writes are durable when it returns. On a read error
// or ctx cancellation it returns the error; frames already written stay as
// unreferenced orphans that Sweep removes.
//
// No sweep deletes a chunk the ingest lists, however long it runs, nor
// after it returns until PutManifest stores its manifest (or, if that never
// happens, until the sweep grace has passed since it returned); see holds.
func (s *Store) Ingest(ctx context.Context, r io.Reader) (*IngestResult, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	in := &ingest{s: s, ctx: ctx, frames: map[ChunkID]uint32{}, done: make(chan result, s.cfg.MaxChunksInFlight),
		batch: s.db.NewBatch(), pinned: map[uint32]int{}, hold: &hold{}}
	defer in.batch.Close()
	err := in.read(r)
	for in.outstanding > 0 { // always collect, so buffers and pins are released
		in.handle(<-in.done)
	}
	if err == nil {
		err = in.err
	}
	if err == nil {
		err = in.commit(true)
	}
	for seg, n := range in.pinned { // abandoned frames: dead bytes for compaction
		s.segs.unpin(seg, n)
	}
	if err != nil {
		s.holds.release(in.hold)
		return nil, err
	}
	s.holds.ended(in.hold, in.res.Manifest.ID(), s.now())
	for _, c := range in.res.Manifest.Chunks {
		in.res.StoredSize += int64(in.frames[c.ID])
	}
	return &in.res, nil
}

// read cuts the stream and feeds the chunks to add.
func (in *ingest) read(r io.Reader) error {
	cfg := in.s.cfg
	head := in.s.bufs.get(cfg.NarSizeThreshold)
	defer in.s.bufs.put(head)
	n, err := io.ReadFull(r, head)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		if n == 0 {
			return nil
		}
		return in.add(head[:n])
	case err != nil:
		return err
	}
	scan := in.s.bufs.get(2 * cfg.MaxSize)
	defer in.s.bufs.put(scan)
	ch, err := chunkers.NewChunkerBuffer(cdcAlgorithm, io.MultiReader(bytes.NewReader(head), r),
		&chunkers.ChunkerOpts{MinSize: cfg.MinSize, NormalSize: cfg.AvgSize, MaxSize: cfg.MaxSize}, scan)
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
		} else if err != nil {
			return err
		}
	}
}

// add records one chunk and, if the store lacks it, queues it for a worker.
// data is only valid until add returns.
func (in *ingest) add(data []byte) error {
	if err := in.ctx.Err(); err != nil {
		return err
	}
	if in.err != nil {
		return in.err
	}
	id := ChunkID(blake3.Sum256(data))
	size := uint32(len(data))
	in.res.Manifest.Chunks = append(in.res.Manifest.Chunks, Chunk{ID: id, Size: size})
	in.res.RawSize += int64(size)
	if _, seen := in.frames[id]; seen {
		in.res.DedupChunks++
		in.res.DedupRawBytes += int64(size)
		return nil
	}
	// Held before it is looked up or written: a sweep that deletes it
	// first makes the lookup miss (and the chunk is written again), one
	// that comes later sees the hold when it re-checks.
	in.s.holds.add(in.hold, id)
	meta, ok, err := in.s.touch(id)
	if err != nil {
		return err
	}
	if ok {
		in.frames[id] = meta.frameSize
		in.res.DedupChunks++
		in.res.DedupRawBytes += int64(size)
		return nil
	}
	in.frames[id] = 0
	in.res.NewChunks++

	weight := int64(sizeClass(len(data)))
	if err := in.s.inflight.Acquire(in.ctx, weight); err != nil {
		return err
	}
	raw := in.s.bufs.get(len(data))
	copy(raw, data)
	if in.outstanding == cap(in.done) {
		in.handle(<-in.done)
	}
	select {
	case in.s.jobs <- job{id: id, raw: raw, weight: weight, done: in.done}:
		in.outstanding++
	case <-in.ctx.Done():
		in.s.bufs.put(raw)
		in.s.inflight.Release(weight)
		return in.ctx.Err()
	}
	for { // collect what is ready without waiting
		select {
		case r := <-in.done:
			in.handle(r)
		default:
			return nil
		}
	}
}

// handle takes a worker's result into the pending index batch.
func (in *ingest) handle(r result) {
	in.outstanding--
	if r.err != nil {
		in.err = firstErr(in.err, r.err)
		return
	}
	in.pinned[r.meta.seg]++
	in.frames[r.id] = r.meta.frameSize
	if err := in.batch.Set(chunkKey(r.id), r.meta.encode(), nil); err != nil {
		in.err = firstErr(in.err, err)
		return
	}
	if in.unsynced += int64(r.meta.frameSize); in.unsynced >= syncEvery && in.err == nil {
		in.err = in.commit(false)
	}
}

// commit makes the frames durable, then their index entries (an index entry
// never points at bytes that could vanish in a crash), and unpins them.
func (in *ingest) commit(final bool) error {
	for seg := range in.pinned {
		if err := in.s.segs.sync(seg); err != nil {
			return err
		}
	}
	opts := pebble.NoSync
	if final {
		opts = pebble.Sync
	}
	empty := in.batch.Empty()
	if err := in.batch.Commit(opts); err != nil {
		return fmt.Errorf("chunkstore: commit: %w", err)
	}
	if final && empty && in.committed {
		if err := in.s.db.LogData(nil, pebble.Sync); err != nil { // sync the earlier NoSync commits
			return fmt.Errorf("chunkstore: sync: %w", err)
		}
	}
	in.batch.Reset()
	in.committed = in.committed || !empty
	for seg, n := range in.pinned {
		in.s.segs.unpin(seg, n)
	}
	clear(in.pinned)
	in.unsynced = 0
	return nil
}

func firstErr(first, next error) error {
	if first != nil {
		return first
	}
	return next
}
