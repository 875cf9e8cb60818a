package chunkstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/semaphore"

	"github.com/garret-cache/garret/internal/logbridge"
)

// Store is a node's local chunk store. All methods are safe for concurrent use.
type Store struct {
	cfg     Config
	log     *slog.Logger
	db      *pebble.DB
	segs    *segments
	metrics *metrics

	// life guards Close: every operation holds it shared; Close takes it
	// exclusively, so it waits for running operations and later ones get
	// ErrClosed.
	life   sync.RWMutex
	closed bool

	// gc orders deletions against writes that rely on existing data: Sweep,
	// segment compaction and dropping a corrupt frame hold it exclusively
	// while they re-check and delete; a dedup touch, PutManifest and PutFrame
	// hold it shared.
	gc sync.RWMutex
	// sweeping serializes sweeps; scrubbing refuses a second scrub.
	sweeping  sync.Mutex
	scrubbing sync.Mutex
	// touchAfter (nanoseconds) is a quarter of the last sweep's grace: a
	// deduplicated chunk older than this gets its touched time refreshed.
	// Zero until the first sweep, so every dedup refreshes until then.
	touchAfter atomic.Int64
	// holds are the chunks of uploads not yet committed, which no sweep
	// deletes.
	holds *holds

	inflight *semaphore.Weighted // raw chunk bytes across all ingests
	jobs     chan job            // to the compression workers
	workers  sync.WaitGroup
	bufs     bufferPool
	decoder  *zstd.Decoder // for PutFrame; DecodeAll is safe for concurrent use
	// verified are frame locations CRC-checked recently, which a NAR
	// stream may send with sendfile (sendfile.go).
	verified *verifiedFrames
	// resolved are NARs recently opened, kept resolved (resolved.go).
	resolved *resolvedNARs
}

// castagnoli is CRC-32C: hardware-accelerated, checked on every frame served.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Open opens or creates the store in cfg.Dir and starts GOMAXPROCS
// compression workers.
func Open(cfg Config, log *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	segs, err := openSegments(filepath.Join(cfg.Dir, "segments"), cfg.SegmentSize)
	if err != nil {
		return nil, err
	}
	cache := pebble.NewCache(cfg.CacheSize)
	defer cache.Unref() // the DB holds its own reference
	db, err := pebble.Open(filepath.Join(cfg.Dir, "index"), &pebble.Options{
		Cache:              cache,
		MemTableSize:       4 << 20, // the index holds ~70 B per chunk; frames are in segments
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             logbridge.Pebble(log),
	})
	if lockHeld(err) {
		return nil, fmt.Errorf("%w (%s: %v)", ErrInUse, cfg.Dir, err)
	} else if err != nil {
		return nil, fmt.Errorf("chunkstore: open index in %s: %w", cfg.Dir, err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithDecoderMaxMemory(uint64(cfg.maxChunk())), zstd.WithDecoderLowmem(true))
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	m, err := newMetrics(cfg.Metrics, segs)
	if err != nil {
		_ = db.Close()
		dec.Close()
		return nil, fmt.Errorf("chunkstore: metrics: %w", err)
	}
	s := &Store{cfg: cfg, log: log, db: db, segs: segs, decoder: dec, holds: newHolds(), metrics: m, verified: newVerifiedFrames(), resolved: newResolvedNARs(),
		inflight: semaphore.NewWeighted(cfg.MaxBytesInFlight), jobs: make(chan job)}
	for range runtime.GOMAXPROCS(0) {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(cfg.Level), zstd.WithEncoderConcurrency(1),
			zstd.WithLowerEncoderMem(true))
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		s.workers.Add(1)
		go s.compressor(enc)
	}
	log.Debug("chunkstore open", "dir", cfg.Dir, "segments", len(segs.list()))
	return s, nil
}

// lockHeld reports whether err is pebble failing to take its directory lock
// because another process holds it (fcntl F_SETLK answers EAGAIN or EACCES;
// a path error is something else, such as a permission problem).
func lockHeld(err error) bool {
	var pe *fs.PathError
	return (errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES)) && !errors.As(err, &pe)
}

// Close waits for running operations, stops the workers and closes the
// index and segment files. Later calls return nil.
func (s *Store) Close() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.jobs)
	s.workers.Wait()
	s.decoder.Close()
	return errors.Join(s.db.Close(), s.segs.close())
}

// enter starts an operation; exit ends it.
func (s *Store) enter() error {
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) exit() { s.life.RUnlock() }

// chunkMeta is a chunk's index entry: everything OpenNAR, HasChunk and the
// serving path need, without touching the frame.
type chunkMeta struct {
	rawSize, frameSize, crc uint32
	seg                     uint32 // segment file
	off                     int64  // offset of the frame in it
	touched                 int64  // unix nanoseconds: written, or last relied on by a dedup
}

const metaLen = 32

func (m chunkMeta) encode() []byte {
	b := make([]byte, metaLen)
	binary.LittleEndian.PutUint32(b[0:], m.rawSize)
	binary.LittleEndian.PutUint32(b[4:], m.frameSize)
	binary.LittleEndian.PutUint32(b[8:], m.crc)
	binary.LittleEndian.PutUint32(b[12:], m.seg)
	binary.LittleEndian.PutUint64(b[16:], uint64(m.off))
	binary.LittleEndian.PutUint64(b[24:], uint64(m.touched))
	return b
}

func decodeMeta(b []byte) (chunkMeta, error) {
	if len(b) != metaLen {
		return chunkMeta{}, fmt.Errorf("%w: chunk metadata of %d bytes", ErrCorrupt, len(b))
	}
	return chunkMeta{rawSize: binary.LittleEndian.Uint32(b[0:]), frameSize: binary.LittleEndian.Uint32(b[4:]),
		crc: binary.LittleEndian.Uint32(b[8:]), seg: binary.LittleEndian.Uint32(b[12:]),
		off: int64(binary.LittleEndian.Uint64(b[16:])), touched: int64(binary.LittleEndian.Uint64(b[24:]))}, nil
}

// sameFrame reports whether two metas point at the same stored bytes.
func (m chunkMeta) sameFrame(o chunkMeta) bool {
	return m.seg == o.seg && m.off == o.off && m.frameSize == o.frameSize && m.crc == o.crc
}

// getMeta reads a chunk's index entry.
func (s *Store) getMeta(id ChunkID) (chunkMeta, bool, error) {
	v, closer, err := s.db.Get(chunkKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return chunkMeta{}, false, nil
	} else if err != nil {
		return chunkMeta{}, false, fmt.Errorf("chunkstore: read chunk %s: %w", id, err)
	}
	defer closer.Close()
	m, err := decodeMeta(v)
	return m, err == nil, err
}

// HasChunk reports whether the chunk is stored locally (index only).
func (s *Store) HasChunk(id ChunkID) (bool, error) {
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.exit()
	_, ok, err := s.getMeta(id)
	return ok, err
}

// Stats counts what the store holds.
type Stats struct {
	Chunks      int64 // chunks in the index
	StoredBytes int64 // their frame bytes (segment files also hold dead bytes until compacted)
	Manifests   int64 // manifests in the index
}

// Stats walks the chunk and manifest index.
func (s *Store) Stats() (Stats, error) {
	if err := s.enter(); err != nil {
		return Stats{}, err
	}
	defer s.exit()
	var st Stats
	err := s.scan(prefixChunk, func(_ [32]byte, v []byte) error {
		m, err := decodeMeta(v)
		if err != nil {
			return err
		}
		st.Chunks++
		st.StoredBytes += int64(m.frameSize)
		return nil
	})
	if err != nil {
		return st, err
	}
	err = s.scan(prefixManifest, func([32]byte, []byte) error { st.Manifests++; return nil })
	return st, err
}

// scan visits every key with a prefix, in key order.
func (s *Store) scan(prefix byte, fn func(id [32]byte, value []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		var id [32]byte
		if len(it.Key()) != 1+len(id) {
			continue
		}
		copy(id[:], it.Key()[1:])
		v, err := it.ValueAndErr()
		if err == nil {
			err = fn(id, v)
		}
		if err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}

// now is the store's clock in nanoseconds (Config.Now).
func (s *Store) now() int64 {
	if s.cfg.Now != nil {
		return s.cfg.Now().UnixNano()
	}
	return time.Now().UnixNano()
}

// CacheBytes is what the index's block cache holds now. Without cgo pebble
// allocates its blocks on the Go heap, so the node counts them when it sets
// the runtime's soft memory limit.
func (s *Store) CacheBytes() int64 { return s.db.Metrics().BlockCache.Size }
