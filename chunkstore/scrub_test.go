package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/garret-cache/garret/internal/eventually"
)

// fastScrub is a rate no test store reaches in a few seconds.
const fastScrub = 1 << 40

// TestScrub_CleanStore: every frame is checked, none is bad.
func TestScrub_CleanStore(t *testing.T) {
	s := newTestStore(t)
	mustIngest(t, s, testData(60, 1<<20))
	mustIngest(t, s, testData(61, 300<<10))
	want := mustStats(t, s)
	st, err := s.Scrub(context.Background(), fastScrub)
	if err != nil {
		t.Fatal(err)
	}
	if st.Chunks != want.Chunks || st.Bytes != want.StoredBytes || st.Bad != 0 || len(st.Dropped) != 0 {
		t.Fatalf("scrub %+v, store %+v", st, want)
	}
	if want.Chunks < 10 {
		t.Fatalf("only %d chunks", want.Chunks)
	}
}

// TestScrub_ManyPages: a walk over more entries than one page sees each
// exactly once.
func TestScrub_ManyPages(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.NarSizeThreshold, cfg.MinSize, cfg.AvgSize, cfg.MaxSize = 1024, 64, 256, 1024
	s := openTest(t, cfg)
	mustIngest(t, s, testData(62, 400<<10))
	want := mustStats(t, s)
	if want.Chunks <= 2*scrubPage {
		t.Fatalf("only %d chunks: want several pages", want.Chunks)
	}
	st, err := s.Scrub(context.Background(), fastScrub)
	if err != nil || st.Chunks != want.Chunks || st.Bad != 0 {
		t.Fatalf("scrub %+v %v, store has %d chunks", st, err, want.Chunks)
	}
}

// TestScrub_DropsExactlyTheBadChunks: a frame with flipped bytes (its CRC
// fails) and a frame whose bytes and CRC were both changed (only the
// content check sees it) are dropped and reported; every other chunk stays
// and the NAR that does not use them still serves.
func TestScrub_DropsExactlyTheBadChunks(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(t.TempDir())
	cfg.Metrics = reg
	s := openTest(t, cfg)
	res, _ := mustIngest(t, s, testData(63, 1<<20))
	otherData := testData(64, 500<<10)
	_, other := mustIngest(t, s, otherData)
	before := mustStats(t, s)
	crcBad, contentBad := res.Manifest.Chunks[1].ID, res.Manifest.Chunks[3].ID
	corruptFrame(t, s, crcBad)
	corruptFrameAndCRC(t, s, contentBad)

	st, err := s.Scrub(context.Background(), fastScrub)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(st.Dropped, func(a, b ChunkID) int { return bytes.Compare(a[:], b[:]) })
	want := []ChunkID{crcBad, contentBad}
	slices.SortFunc(want, func(a, b ChunkID) int { return bytes.Compare(a[:], b[:]) })
	if st.Bad != 2 || !slices.Equal(st.Dropped, want) || st.Chunks != before.Chunks {
		t.Fatalf("scrub %+v, want 2 bad of %d: %v", st, before.Chunks, want)
	}
	for _, id := range want {
		if ok, _ := s.HasChunk(id); ok {
			t.Errorf("bad chunk %s still stored", id)
		}
	}
	if after := mustStats(t, s); after.Chunks != before.Chunks-2 {
		t.Fatalf("%d chunks left of %d", after.Chunks, before.Chunks)
	}
	if !bytes.Equal(decode(t, served(t, s, other)), otherData) {
		t.Fatal("the other NAR changed")
	}
	if st, err := s.Scrub(context.Background(), fastScrub); err != nil || st.Bad != 0 {
		t.Fatalf("second scrub: %+v %v", st, err)
	}
	if got := testutil.ToFloat64(s.metrics.scrubBad); got != 2 {
		t.Errorf("scrub_bad_chunks_total %v", got)
	}
	if got := testutil.ToFloat64(s.metrics.scrubs); got != 2 {
		t.Errorf("scrub_runs_total %v", got)
	}
	if got := testutil.ToFloat64(s.metrics.scrubChunks); got != float64(2*before.Chunks-2) {
		t.Errorf("scrub_chunks_checked_total %v", got)
	}
}

// corruptFrameAndCRC damages a frame and rewrites its index entry's CRC to
// match, as a bug writing a bad frame would: only decoding and hashing can
// tell.
func corruptFrameAndCRC(t *testing.T, s *Store, id ChunkID) {
	t.Helper()
	corruptFrame(t, s, id)
	m, _, _ := s.getMeta(id)
	frame := make([]byte, m.frameSize)
	f, err := os.Open(s.segs.path(m.seg))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(frame, m.off); err != nil {
		t.Fatal(err)
	}
	m.crc = crc32.Checksum(frame, castagnoli)
	if err := s.db.Set(chunkKey(id), m.encode(), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Frame(id); err != nil {
		t.Fatalf("the CRC should pass now: %v", err)
	}
}

// TestScrub_Rate: a scrub reads no faster than its rate (the lower bound
// only: a slow machine makes it longer, never shorter).
func TestScrub_Rate(t *testing.T) {
	s := newTestStore(t)
	mustIngest(t, s, testData(65, 2<<20))
	stored := mustStats(t, s).StoredBytes
	rate := stored * 4 // a quarter of a second
	start := time.Now()
	st, err := s.Scrub(context.Background(), rate)
	took := time.Since(start)
	if err != nil || st.Bytes != stored {
		t.Fatalf("scrub %+v %v", st, err)
	}
	if least := 250*time.Millisecond - 2*pacerSlack; took < least {
		t.Fatalf("%d bytes at %d bytes/s took %v, want at least %v", stored, rate, took, least)
	}
}

// TestScrub_CancelAndOneAtATime: a scrub stops with its context, and a
// second scrub while one runs is refused.
func TestScrub_CancelAndOneAtATime(t *testing.T) {
	s := newTestStore(t)
	mustIngest(t, s, testData(66, 1<<20))
	total := mustStats(t, s).Chunks
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var st ScrubStats
	go func() {
		var err error
		st, err = s.Scrub(ctx, 64<<10) // ~10 s for the store
		done <- err
	}()
	eventually.True(t, "the scrub checks a chunk", func() bool { return testutil.ToFloat64(s.metrics.scrubChunks) > 0 })
	if _, err := s.Scrub(context.Background(), fastScrub); !errors.Is(err, ErrScrubRunning) {
		t.Fatalf("a second scrub: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || st.Chunks >= total {
			t.Fatalf("cancelled scrub: %+v %v (store has %d chunks)", st, err, total)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the scrub did not stop with its context")
	}
	if _, err := s.Scrub(context.Background(), 0); err == nil {
		t.Fatal("a zero rate was accepted")
	}
}

// TestScrub_BesideWritesAndSweeps: a scrub runs while ingests, sweeps and
// compaction move and delete frames; it reports nothing bad and the live
// NARs still serve.
func TestScrub_BesideWritesAndSweeps(t *testing.T) {
	s := newTestStore(t)
	var live []ManifestID
	var datas [][]byte
	for i := range 4 {
		d := testData(uint64(70+i), 700<<10)
		_, id := mustIngest(t, s, d)
		live, datas = append(live, id), append(datas, d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	wg.Add(1)
	go func() { // churn: orphans to sweep, segments to compact
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := s.Ingest(ctx, bytes.NewReader(testData(uint64(100+i), 400<<10))); err != nil && ctx.Err() == nil {
				errs <- err
				return
			}
			if _, err := s.Sweep(ctx, func(id ManifestID) bool { return slices.Contains(live, id) }, 0); err != nil && ctx.Err() == nil {
				errs <- err
				return
			}
		}
	}()
	for range 3 {
		st, err := s.Scrub(context.Background(), 16<<20) // slow enough to overlap the churn
		if err != nil || st.Bad != 0 {
			t.Fatalf("scrub beside churn: %+v %v", st, err)
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, id := range live {
		if !bytes.Equal(decode(t, served(t, s, id)), datas[i]) {
			t.Fatalf("NAR %d changed", i)
		}
	}
}
