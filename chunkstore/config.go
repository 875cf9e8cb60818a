package chunkstore

import (
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"math/bits"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Sentinel errors. Wrapped errors carry the id concerned; test with errors.Is.
var (
	// ErrNotFound: no such manifest or chunk in this store.
	ErrNotFound = errors.New("chunkstore: not found")
	// ErrMissingChunks: a manifest refers to chunks this store lacks (see
	// MissingChunksError for the list).
	ErrMissingChunks = errors.New("chunkstore: chunks missing")
	// ErrCorrupt: stored or received bytes fail verification. A stored frame
	// that fails is deleted before this is returned.
	ErrCorrupt = errors.New("chunkstore: corrupt chunk")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("chunkstore: closed")
	// ErrInUse: another process has the store open (it holds pebble's lock
	// on the index).
	ErrInUse = errors.New("chunkstore: in use by another process")
)

// MissingChunksError lists the chunks of a manifest that are not local.
type MissingChunksError struct{ Chunks []ChunkID }

// Error names how many chunks are missing and the first of them.
func (e *MissingChunksError) Error() string {
	if len(e.Chunks) == 0 {
		return ErrMissingChunks.Error()
	}
	return fmt.Sprintf("chunkstore: %d chunk(s) missing, first %s", len(e.Chunks), e.Chunks[0])
}

// Unwrap makes errors.Is(err, ErrMissingChunks) true.
func (e *MissingChunksError) Unwrap() error { return ErrMissingChunks }

// Config tunes a Store. Chunking parameters are an on-disk format: changing
// them stops deduplication against chunks cut before (it stays correct).
type Config struct {
	// Dir holds the store: index/ (pebble) and segments/ (frame files).
	// Created if missing.
	Dir string
	// NarSizeThreshold: a NAR shorter than this is stored as one chunk.
	NarSizeThreshold int
	// MinSize, AvgSize and MaxSize bound FastCDC chunks.
	MinSize, AvgSize, MaxSize int
	// Level is the zstd level of new frames.
	Level zstd.EncoderLevel
	// MaxChunksInFlight caps the chunks one Ingest has queued or compressing.
	MaxChunksInFlight int
	// MaxBytesInFlight caps the raw chunk buffers of all concurrent ingests
	// together (counted in the buffers' size classes).
	MaxBytesInFlight int64
	// CacheSize is pebble's block cache for the index.
	CacheSize int64
	// SegmentSize is the size at which the segment file being appended to is
	// sealed and a new one started (an addition to the original API: the
	// layout chosen in DESIGN.md stores frames in segment files).
	SegmentSize int64
	// Metrics is the registry the store's series go to (the node's); nil:
	// not exported.
	Metrics prometheus.Registerer
	// Now is the store's clock (chunk and manifest ages, the sweep's
	// cutoff); nil: time.Now. Tests move it instead of sleeping.
	Now func() time.Time
}

// DefaultConfig returns Attic's chunking defaults and Garret's memory bounds.
func DefaultConfig() Config {
	return Config{
		NarSizeThreshold:  64 << 10,
		MinSize:           16 << 10,
		AvgSize:           64 << 10,
		MaxSize:           256 << 10,
		Level:             zstd.SpeedFastest,
		MaxChunksInFlight: 4,
		MaxBytesInFlight:  32 << 20,
		CacheSize:         64 << 20,
		SegmentSize:       128 << 20,
	}
}

// maxChunk is the largest raw chunk the configuration can produce.
func (c Config) maxChunk() int { return max(c.MaxSize, c.NarSizeThreshold-1, 1) }

// Validate checks the bounds.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("chunkstore: Config.Dir is empty")
	case c.MinSize < 64 || c.MinSize > c.AvgSize || c.AvgSize > c.MaxSize:
		return fmt.Errorf("chunkstore: need 64 <= MinSize <= AvgSize <= MaxSize, got %d/%d/%d",
			c.MinSize, c.AvgSize, c.MaxSize)
	case c.MaxSize > maxChunkLimit:
		return fmt.Errorf("chunkstore: MaxSize %d above %d", c.MaxSize, maxChunkLimit)
	case c.NarSizeThreshold < 0 || c.NarSizeThreshold > maxChunkLimit:
		return fmt.Errorf("chunkstore: NarSizeThreshold %d outside [0, %d]", c.NarSizeThreshold, maxChunkLimit)
	case c.Level < zstd.SpeedFastest || c.Level > zstd.SpeedBestCompression:
		return fmt.Errorf("chunkstore: zstd level %d unknown", c.Level)
	case c.MaxChunksInFlight < 1:
		return errors.New("chunkstore: MaxChunksInFlight < 1")
	case c.MaxBytesInFlight < 2*int64(sizeClass(c.maxChunk())):
		fits := 0 // the largest buffer size of which two fit
		if half := c.MaxBytesInFlight / 2; half > 0 {
			fits = 1 << (bits.Len64(uint64(half)) - 1)
		}
		return fmt.Errorf("chunkstore: chunks of up to %d bytes (MaxSize, NarSizeThreshold-1) need MaxBytesInFlight >= %d, got %d (it takes chunks up to %d bytes)",
			c.maxChunk(), 2*sizeClass(c.maxChunk()), c.MaxBytesInFlight, fits)
	case c.CacheSize < 1<<20:
		return errors.New("chunkstore: CacheSize below 1 MiB")
	case c.SegmentSize < int64(c.maxChunk())*2:
		return errors.New("chunkstore: SegmentSize must hold at least two of the largest frames")
	}
	return nil
}

// maxChunkLimit keeps every size in the uint32 fields of metadata and
// manifests with room to spare, and a chunk buffer within reason.
const maxChunkLimit = 64 << 20
