package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"os"
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
	s := newTestStore(t)
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
	time.Sleep(grace) // the chunks are now older than grace: sweepable
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
