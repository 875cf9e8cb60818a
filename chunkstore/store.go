package chunkstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/semaphore"
)

// Sentinel errors.
var (
	ErrNotFound      = errors.New("chunkstore: not found")
	ErrMissingChunks = errors.New("chunkstore: chunks missing")
	ErrCorrupt       = errors.New("chunkstore: corrupt chunk")
)

// MissingChunksError lists the chunks of a manifest that are not local.
type MissingChunksError struct{ Chunks []ChunkID }

func (e *MissingChunksError) Error() string {
	return fmt.Sprintf("chunkstore: %d chunk(s) missing, first %s", len(e.Chunks), e.Chunks[0])
}

// Unwrap makes errors.Is(err, ErrMissingChunks) true.
func (e *MissingChunksError) Unwrap() error { return ErrMissingChunks }

// Config tunes the store.
type Config struct {
	Dir                       string
	NarSizeThreshold          int // smaller NARs are one chunk
	MinSize, AvgSize, MaxSize int // FastCDC bounds
	Level                     zstd.EncoderLevel
	MaxChunksInFlight         int   // compressions in flight per Ingest
	MaxBytesInFlight          int64 // raw chunk bytes buffered across all ingests
	CacheSize                 int64 // pebble block cache
}

// DefaultConfig returns Attic's chunking defaults and Garret's bounds.
func DefaultConfig() Config {
	return Config{NarSizeThreshold: 64 << 10, MinSize: 16 << 10, AvgSize: 64 << 10, MaxSize: 256 << 10,
		Level: zstd.SpeedFastest, MaxChunksInFlight: 4, MaxBytesInFlight: 16 << 20, CacheSize: 32 << 20}
}

// Validate checks the bounds.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("chunkstore: no Dir")
	case c.MinSize < 64 || c.MinSize > c.AvgSize || c.AvgSize > c.MaxSize:
		return fmt.Errorf("chunkstore: need 64 <= MinSize <= AvgSize <= MaxSize, got %d/%d/%d", c.MinSize, c.AvgSize, c.MaxSize)
	case c.NarSizeThreshold < 0 || c.NarSizeThreshold > 64<<20:
		return fmt.Errorf("chunkstore: NarSizeThreshold %d out of range", c.NarSizeThreshold)
	case c.MaxChunksInFlight < 1:
		return errors.New("chunkstore: MaxChunksInFlight < 1")
	case c.MaxBytesInFlight < int64(2*max(c.MaxSize, c.NarSizeThreshold)):
		return errors.New("chunkstore: MaxBytesInFlight must hold at least two of the largest chunks")
	}
	return nil
}

// Store is the chunk store.
type Store struct {
	cfg      Config
	log      *slog.Logger
	db       *pebble.DB
	cache    *pebble.Cache
	inflight *semaphore.Weighted
	compress chan struct{} // store-wide compression slots: GOMAXPROCS
	encoders sync.Pool
	bufs     sync.Pool
	crc      *crc32.Table
	closing  sync.Once
	closeErr error
}

// Key prefixes.
const (
	prefixFrame    = 'c' // c/<chunk id> → zstd frame
	prefixMeta     = 'm' // m/<chunk id> → chunkMeta
	prefixManifest = 'f' // f/<manifest id> → written-at + manifest
)

func key(prefix byte, id [32]byte) []byte {
	k := make([]byte, 33)
	k[0] = prefix
	copy(k[1:], id[:])
	return k
}

// chunkMeta is the small record read on the serving path.
type chunkMeta struct {
	rawSize, frameSize, crc uint32
	touched                 int64 // unix seconds
}

func (m chunkMeta) encode() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], m.rawSize)
	binary.LittleEndian.PutUint32(b[4:], m.frameSize)
	binary.LittleEndian.PutUint32(b[8:], m.crc)
	binary.LittleEndian.PutUint64(b[12:], uint64(m.touched))
	return b
}

func decodeMeta(b []byte) (chunkMeta, error) {
	if len(b) != 20 {
		return chunkMeta{}, fmt.Errorf("%w: metadata of %d bytes", ErrCorrupt, len(b))
	}
	return chunkMeta{binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint32(b[4:]),
		binary.LittleEndian.Uint32(b[8:]), int64(binary.LittleEndian.Uint64(b[12:]))}, nil
}

// Open opens or creates the store.
func Open(cfg Config, log *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cache := pebble.NewCache(cfg.CacheSize)
	db, err := pebble.Open(cfg.Dir, &pebble.Options{
		Cache: cache, MemTableSize: 8 << 20, MaxOpenFiles: 1000,
		FormatMajorVersion: pebble.FormatNewest, Logger: pebbleLogger{log},
	})
	if err != nil {
		cache.Unref()
		return nil, fmt.Errorf("chunkstore: open %s: %w", cfg.Dir, err)
	}
	s := &Store{cfg: cfg, log: log, db: db, cache: cache,
		inflight: semaphore.NewWeighted(cfg.MaxBytesInFlight), crc: crc32.MakeTable(crc32.Castagnoli),
		compress: make(chan struct{}, runtime.GOMAXPROCS(0))}
	s.encoders.New = func() any {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(cfg.Level), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
		return e
	}
	return s, nil
}

// Close closes the database; later calls return the first result.
func (s *Store) Close() error {
	s.closing.Do(func() {
		s.closeErr = s.db.Close()
		s.cache.Unref()
	})
	return s.closeErr
}

// pebbleLogger sends pebble's chatter to slog at debug level.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}

// getMeta reads a chunk's metadata.
func (s *Store) getMeta(id ChunkID) (chunkMeta, bool, error) {
	v, closer, err := s.db.Get(key(prefixMeta, id))
	if errors.Is(err, pebble.ErrNotFound) {
		return chunkMeta{}, false, nil
	} else if err != nil {
		return chunkMeta{}, false, err
	}
	defer closer.Close()
	m, err := decodeMeta(v)
	return m, err == nil, err
}

// HasChunk reports whether the chunk is stored locally.
func (s *Store) HasChunk(id ChunkID) (bool, error) {
	_, ok, err := s.getMeta(id)
	return ok, err
}

// Stats counts stored chunks and their frame bytes.
type Stats struct {
	Chunks      int64
	StoredBytes int64
}

// Stats walks the chunk metadata.
func (s *Store) Stats() (Stats, error) {
	var st Stats
	err := s.scan(prefixMeta, func(_ [32]byte, v []byte) error {
		m, err := decodeMeta(v)
		if err != nil {
			return err
		}
		st.Chunks++
		st.StoredBytes += int64(m.frameSize)
		return nil
	})
	return st, err
}

// scan visits every key with a prefix.
func (s *Store) scan(prefix byte, fn func(id [32]byte, value []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		var id [32]byte
		if len(it.Key()) != 33 {
			continue
		}
		copy(id[:], it.Key()[1:])
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := fn(id, v); err != nil {
			return err
		}
	}
	return it.Error()
}

func now() int64 { return time.Now().Unix() }
