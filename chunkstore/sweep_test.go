package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

func TestSweep_KeepsLiveRemovesTheRest(t *testing.T) {
	s := newTestStore(t)
	liveData := testData(40, 1<<20)
	_, live := mustIngest(t, s, liveData)
	_, dead := mustIngest(t, s, testData(41, 1<<20))
	// An upload that fails half way leaves orphan chunks.
	if _, err := s.Ingest(context.Background(), failingReader{bytes.NewReader(testData(42, 2<<20))}); err == nil {
		t.Fatal("failing reader did not fail the ingest")
	}
	isLive := func(id ManifestID) bool { return id == live }
	before := mustStats(t, s)

	st, err := s.Sweep(context.Background(), isLive, time.Hour)
	if err != nil || st.ManifestsDeleted != 0 || st.ChunksDeleted != 0 {
		t.Fatalf("within grace nothing goes: %+v %v", st, err)
	}
	if _, err := s.OpenNAR(dead); err != nil {
		t.Fatalf("dead NAR within grace: %v", err)
	}

	disk := segmentBytes(t, s)
	st, err = s.Sweep(context.Background(), isLive, 0)
	if err != nil || st.ManifestsDeleted != 1 || st.ChunksDeleted == 0 || st.BytesFreed == 0 {
		t.Fatalf("sweep: %+v %v", st, err)
	}
	after := mustStats(t, s)
	m, _ := s.Manifest(live)
	if after.Chunks != int64(len(m.Chunks)) || after.Chunks+int64(st.ChunksDeleted) != before.Chunks {
		t.Fatalf("%d chunks left of %d, live manifest has %d", after.Chunks, before.Chunks, len(m.Chunks))
	}
	if _, err := s.OpenNAR(dead); !errors.Is(err, ErrNotFound) {
		t.Fatalf("dead NAR after sweep: %v", err)
	}
	if !bytes.Equal(decode(t, served(t, s, live)), liveData) {
		t.Fatal("live NAR changed")
	}
	if st.SegmentsCompacted == 0 || segmentBytes(t, s) != disk-st.DiskBytesFreed || segmentBytes(t, s) >= disk {
		t.Fatalf("compaction: %+v, segments %d -> %d bytes", st, disk, segmentBytes(t, s))
	}
	if st, err := s.Sweep(context.Background(), isLive, 0); err != nil || st.ChunksDeleted != 0 || st.ManifestsDeleted != 0 {
		t.Fatalf("second sweep: %+v %v", st, err)
	}
}

func TestSweep_CompactionMovesFramesUnderOpenNARs(t *testing.T) {
	s := newTestStore(t)
	keep := testData(50, 300<<10) // well under half of a 1 MiB segment
	_, live := mustIngest(t, s, keep)
	_, dead := mustIngest(t, s, testData(51, 3<<20))
	nar, err := s.OpenNAR(live) // resolved before its frames move
	if err != nil {
		t.Fatal(err)
	}
	// Seal the segment holding the live frames' tail by writing more.
	_, dead2 := mustIngest(t, s, testData(52, 2<<20))
	st, err := s.Sweep(context.Background(), func(id ManifestID) bool { return id != dead && id != dead2 }, 0)
	if err != nil || st.SegmentsCompacted == 0 {
		t.Fatalf("sweep: %+v %v", st, err)
	}
	if _, err := os.Stat(s.segs.path(nar.metas[0].seg)); err == nil {
		t.Fatal("the live NAR's first segment was not compacted")
	}
	var b bytes.Buffer
	if _, err := nar.WriteRange(context.Background(), &b, 0, nar.Size); err != nil {
		t.Fatalf("NAR opened before compaction: %v", err)
	}
	if !bytes.Equal(decode(t, b.Bytes()), keep) || !bytes.Equal(decode(t, served(t, s, live)), keep) {
		t.Fatal("live NAR changed by compaction")
	}
}

func TestSweep_DedupTouchProtectsInFlightUploads(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	cfg := testConfig(t.TempDir())
	cfg.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	s := openTest(t, cfg)
	data := testData(60, 1<<20)
	_, old := mustIngest(t, s, data)
	// The catalog drops the NAR; a first sweep within grace keeps it but
	// learns the grace (touches now happen for chunks older than grace/4).
	const grace = time.Second
	none := func(ManifestID) bool { return false }
	if _, err := s.Sweep(context.Background(), none, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sweep(context.Background(), none, grace); err != nil {
		t.Fatal(err)
	}
	clock.Add(int64(grace)) // the chunks are now older than grace: sweepable
	// An upload of the same NAR dedups against them and refreshes them ...
	res, err := s.Ingest(context.Background(), bytes.NewReader(data))
	if err != nil || res.NewChunks != 0 {
		t.Fatalf("re-upload: %+v %v", res, err)
	}
	// ... so a sweep before its manifest is stored keeps them.
	st, err := s.Sweep(context.Background(), none, grace)
	if err != nil || st.ChunksDeleted != 0 || st.ManifestsDeleted != 1 {
		t.Fatalf("sweep during the upload: %+v %v", st, err)
	}
	id, err := s.PutManifest(res.Manifest)
	if err != nil || id != old {
		t.Fatalf("PutManifest: %v", err)
	}
	if !bytes.Equal(decode(t, served(t, s, id)), data) {
		t.Fatal("re-uploaded NAR differs")
	}
}

// TestSweep_LongUploadKeepsItsChunks: an upload still running when a sweep
// runs (grace 0: every chunk is "older than grace") loses none of its
// chunks, neither those it wrote and committed to the index (after 16 MiB of
// frames) nor those it deduplicated against an orphan; it commits and reads
// back whole.
func TestSweep_LongUploadKeepsItsChunks(t *testing.T) {
	s := newTestStore(t)
	orphan := testData(60, 2<<20)
	if _, err := s.Ingest(context.Background(), bytes.NewReader(orphan)); err != nil { // never committed
		t.Fatal(err)
	}
	before := mustStats(t, s).Chunks
	fresh := make([]byte, syncEvery+(2<<20)) // incompressible: > syncEvery of frames
	rnd := rand.New(rand.NewPCG(61, 1))
	for i := range fresh {
		fresh[i] = byte(rnd.Uint32())
	}
	tail := testData(62, 4<<20)
	data := slices.Concat(orphan, fresh, tail)

	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(errors.New("test over")) })
	type out struct {
		res *IngestResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := s.Ingest(context.Background(), pr)
		done <- out{res, err}
	}()
	if _, err := pw.Write(orphan); err != nil {
		t.Fatal(err)
	}
	if _, err := pw.Write(fresh); err != nil {
		t.Fatal(err)
	}
	// The ingest commits its index batch when it handles a result past
	// 16 MiB of frames, which it does as it adds chunks: feed it until then.
	for mustStats(t, s).Chunks < before+syncEvery/(256<<10) {
		if len(tail) == 0 {
			t.Fatal("the upload never committed its first 16 MiB of frames to the index")
		}
		if _, err := pw.Write(tail[:64<<10]); err != nil {
			t.Fatal(err)
		}
		tail = tail[64<<10:]
		time.Sleep(5 * time.Millisecond)
	}

	st, err := s.Sweep(context.Background(), func(ManifestID) bool { return false }, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.ChunksDeleted == 0 {
		t.Fatalf("the sweep in the middle deleted nothing (%+v): the orphan's chunks the upload did not list should go", st)
	}

	if _, err := pw.Write(tail); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	id, err := s.PutManifest(o.res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.holds.count); n != 0 {
		t.Fatalf("%d chunks still held after the manifest was stored", n)
	}
	if !bytes.Equal(decode(t, served(t, s, id)), data) {
		t.Fatal("the long upload's NAR is not whole")
	}
	// Committed: the manifest keeps the chunks.
	if _, err := s.Sweep(context.Background(), func(m ManifestID) bool { return m == id }, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(decode(t, served(t, s, id)), data) {
		t.Fatal("the committed NAR lost chunks in the sweep after its commit")
	}
}

// TestSweep_UncommittedIngestIsReleased: an ingest whose manifest is never
// stored holds its chunks only for the grace period after it returned.
func TestSweep_UncommittedIngestIsReleased(t *testing.T) {
	s := newTestStore(t)
	if _, err := s.Ingest(context.Background(), bytes.NewReader(testData(63, 1<<20))); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Sweep(context.Background(), func(ManifestID) bool { return false }, time.Hour); err != nil || st.ChunksDeleted != 0 {
		t.Fatalf("within grace: %+v %v", st, err)
	}
	if len(s.holds.pending) != 1 || len(s.holds.count) == 0 {
		t.Fatalf("%d holds pending after the ingest, want 1", len(s.holds.pending))
	}
	if _, err := s.Sweep(context.Background(), func(ManifestID) bool { return false }, 0); err != nil {
		t.Fatal(err)
	}
	if n := mustStats(t, s).Chunks; n != 0 || len(s.holds.pending) != 0 || len(s.holds.count) != 0 {
		t.Fatalf("past grace: %d chunks, %d holds pending, %d chunks held; want none", n, len(s.holds.pending), len(s.holds.count))
	}
}
