package chunkstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Scrubbing reads every stored frame back and checks it in full: its
// CRC-32C, then its content (decompressed, BLAKE3 against the chunk id, raw
// size against the index). A frame that fails is dropped through the same
// path as one a read finds bad (dropCorrupt), and its id reported so the
// caller can fetch it again from a peer. The walk takes the index a page at
// a time (the iterator closed between pages) and holds no lock while it
// reads or waits, so ingests, sweeps and compaction run beside it; a frame
// that compaction moved or a sweep deleted meanwhile is followed or skipped
// as on the read path.

// DefaultScrubRate is the frame bytes per second a scrub reads when the
// caller does not choose: 32 MiB/s, ~9 hours per TB of frames, a small
// share of a disk's and of one core's bandwidth (decompressing and hashing
// run at several hundred MB/s per core).
const DefaultScrubRate = 32 << 20

// ErrScrubRunning: a scrub is already running on this store.
var ErrScrubRunning = errors.New("chunkstore: a scrub is already running")

// scrubPage is how many index entries one iterator reads.
const scrubPage = 256

// ScrubStats reports a scrub.
type ScrubStats struct {
	// Chunks and Bytes count the frames checked and their bytes.
	Chunks, Bytes int64
	// Bad counts the frames that failed their check.
	Bad int64
	// Dropped lists the bad chunks that are no longer stored (a frame
	// replaced meanwhile, by a repair or a re-push, is not listed).
	Dropped []ChunkID
}

// Scrub checks every stored frame in full and drops those that fail (see
// above), reading at most rate frame bytes per second. It stops early with
// ctx's error, returning what it checked so far; ErrScrubRunning if another
// scrub is running.
func (s *Store) Scrub(ctx context.Context, rate int64) (ScrubStats, error) {
	var st ScrubStats
	if rate <= 0 {
		return st, fmt.Errorf("chunkstore: scrub rate %d bytes/s: must be positive", rate)
	}
	if !s.scrubbing.TryLock() {
		return st, ErrScrubRunning
	}
	defer s.scrubbing.Unlock()
	start := time.Now()
	p := pacer{rate: rate, start: start}
	var after []byte
	for {
		ids, metas, err := s.scrubPage(after)
		if err != nil {
			return st, err
		}
		if len(ids) == 0 {
			break
		}
		after = chunkKey(ids[len(ids)-1])
		for i, id := range ids {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			n, err := s.scrubChunk(id, metas[i], &st)
			if err != nil {
				return st, err
			}
			if err := p.wait(ctx, n); err != nil {
				return st, err
			}
		}
	}
	s.metrics.scrubbed()
	// Debug: the periodic scrub logs its result at info, and an admin's
	// scrub answers with it.
	s.log.Debug("scrub done", "chunks", st.Chunks, "bytes", st.Bytes, "bad", st.Bad, "dropped", len(st.Dropped),
		"took", time.Since(start).Round(time.Millisecond))
	return st, nil
}

// scrubPage reads up to scrubPage chunk index entries after key after (nil:
// from the first).
func (s *Store) scrubPage(after []byte) ([]ChunkID, []chunkMeta, error) {
	if err := s.enter(); err != nil {
		return nil, nil, err
	}
	defer s.exit()
	lower := []byte{prefixChunk}
	if after != nil {
		lower = append(append([]byte(nil), after...), 0) // the least key after it
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: []byte{prefixChunk + 1}})
	if err != nil {
		return nil, nil, err
	}
	var ids []ChunkID
	var metas []chunkMeta
	for it.First(); it.Valid() && len(ids) < scrubPage; it.Next() {
		if len(it.Key()) != 1+len(ChunkID{}) {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, nil, err
		}
		m, err := decodeMeta(v)
		if err != nil {
			continue // undecodable: the sweep deletes it
		}
		ids, metas = append(ids, ChunkID(it.Key()[1:])), append(metas, m)
	}
	return ids, metas, it.Close()
}

// scrubChunk checks one frame and returns the bytes it read.
func (s *Store) scrubChunk(id ChunkID, meta chunkMeta, st *ScrubStats) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.exit()
	buf := s.bufs.get(int(meta.frameSize))
	defer func() { s.bufs.put(buf) }()
	frame, meta, err := s.readFrameAt(id, meta, buf)
	switch {
	case errors.Is(err, ErrMissingChunks):
		return 0, nil // deleted since the page was read
	case errors.Is(err, ErrCorrupt): // dropped by the read
	case err != nil:
		return 0, err
	default:
		if n, cerr := s.decodeCheck(id, frame); cerr != nil {
			err = s.dropCorrupt(id, meta, "content check failed: "+cerr.Error())
		} else if n != int(meta.rawSize) {
			err = s.dropCorrupt(id, meta, fmt.Sprintf("decodes to %d bytes, the index says %d", n, meta.rawSize))
		}
	}
	st.Chunks++
	st.Bytes += int64(meta.frameSize)
	s.metrics.scrubChecked(int(meta.frameSize))
	if err == nil {
		return int(meta.frameSize), nil
	}
	st.Bad++
	s.metrics.scrubBad.Inc()
	if _, ok, gerr := s.getMeta(id); gerr != nil {
		return 0, gerr
	} else if !ok {
		st.Dropped = append(st.Dropped, id)
	}
	return int(meta.frameSize), nil
}

// pacer holds a walk to rate bytes per second since start.
type pacer struct {
	rate  int64
	start time.Time
	bytes int64
}

// pacerSlack is the least wait worth a timer: shorter debts are paid with
// the next ones.
const pacerSlack = 10 * time.Millisecond

// wait records n more bytes and sleeps until they are due.
func (p *pacer) wait(ctx context.Context, n int) error {
	p.bytes += int64(n)
	due := p.start.Add(time.Duration(float64(p.bytes) / float64(p.rate) * float64(time.Second)))
	d := time.Until(due)
	if d < pacerSlack {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// FrameLocation says where a chunk's frame is stored: the segment file's
// path, the frame's offset in it and its size (for tools and tests that
// inspect or damage the bytes on disk). false if the chunk is not stored.
func (s *Store) FrameLocation(id ChunkID) (path string, off int64, size uint32, ok bool, err error) {
	if err := s.enter(); err != nil {
		return "", 0, 0, false, err
	}
	defer s.exit()
	m, ok, err := s.getMeta(id)
	if err != nil || !ok {
		return "", 0, 0, false, err
	}
	return s.segs.path(m.seg), m.off, m.frameSize, true, nil
}
