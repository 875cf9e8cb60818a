package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
)

// TestResolvedNARs_KeptWhileNothingMoved: a NAR opened again shares the
// first opening's resolution (no index read), and serves the same bytes.
func TestResolvedNARs_KeptWhileNothingMoved(t *testing.T) {
	s := newTestStore(t)
	data := testData(60, 1<<20)
	_, id := mustIngest(t, s, data)
	a, err := s.OpenNAR(id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.OpenNAR(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.metas) < 2 || &a.metas[0] != &b.metas[0] {
		t.Fatal("the second OpenNAR resolved the manifest again")
	}
	// A new ingest (new chunks) does not make it stale.
	mustIngest(t, s, testData(61, 256<<10))
	c, err := s.OpenNAR(id)
	if err != nil {
		t.Fatal(err)
	}
	if &c.metas[0] != &a.metas[0] {
		t.Fatal("an ingest of other chunks dropped the resolved NAR")
	}
	if !bytes.Equal(decode(t, served(t, s, id)), data) {
		t.Fatal("served bytes differ")
	}
}

// TestResolvedNARs_DropMovesTheGeneration: once a corrupt frame is dropped,
// the next OpenNAR resolves again and reports the chunk missing, as it did
// before NARs were kept, instead of promising a NAR it cannot serve.
func TestResolvedNARs_DropMovesTheGeneration(t *testing.T) {
	s := newTestStore(t)
	res, id := mustIngest(t, s, testData(62, 1<<20))
	if _, err := s.OpenNAR(id); err != nil {
		t.Fatal(err)
	}
	bad := res.Manifest.Chunks[1].ID
	corruptFrame(t, s, bad)
	nar, err := s.OpenNAR(id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nar.WriteRange(context.Background(), &bytes.Buffer{}, 0, nar.Size); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("stream over the corrupt frame: %v", err)
	}
	_, err = s.OpenNAR(id)
	var missing *MissingChunksError
	if !errors.As(err, &missing) || len(missing.Chunks) != 1 || missing.Chunks[0] != bad {
		t.Fatalf("OpenNAR after the drop: %v", err)
	}
}

// TestResolvedNARs_CompactionMovesTheGeneration: after a compaction moved a
// kept NAR's frames, OpenNAR resolves the new locations.
func TestResolvedNARs_CompactionMovesTheGeneration(t *testing.T) {
	s := newTestStore(t)
	keep := testData(63, 300<<10)
	_, live := mustIngest(t, s, keep)
	_, dead := mustIngest(t, s, testData(64, 3<<20))
	before, err := s.OpenNAR(live)
	if err != nil {
		t.Fatal(err)
	}
	_, dead2 := mustIngest(t, s, testData(65, 2<<20))
	st, err := s.Sweep(context.Background(), func(id ManifestID) bool { return id != dead && id != dead2 }, 0)
	if err != nil || st.SegmentsCompacted == 0 {
		t.Fatalf("sweep: %+v %v", st, err)
	}
	after, err := s.OpenNAR(live)
	if err != nil {
		t.Fatal(err)
	}
	if after.metas[0].seg == before.metas[0].seg {
		t.Fatalf("OpenNAR after compaction still names segment %d", before.metas[0].seg)
	}
	if _, err := os.Stat(s.segs.path(after.metas[0].seg)); err != nil {
		t.Fatalf("resolved segment: %v", err)
	}
	if !bytes.Equal(decode(t, served(t, s, live)), keep) {
		t.Fatal("served bytes differ after compaction")
	}
}

// TestResolvedNARs_Bounded: the kept NARs never hold more than
// resolvedMaxChunks chunks, the least recently used go first, and a NAR too
// large to keep is not kept.
func TestResolvedNARs_Bounded(t *testing.T) {
	r := newResolvedNARs()
	mk := func(i, chunks int) *resolvedNAR {
		var id ManifestID
		copy(id[:], fmt.Sprintf("%032d", i))
		return &resolvedNAR{id: id, chunks: make([]Chunk, chunks)}
	}
	per := resolvedMaxChunks / 10
	for i := range 40 {
		r.add(mk(i, per))
		if r.chunks > resolvedMaxChunks {
			t.Fatalf("after %d adds the kept NARs hold %d chunks", i+1, r.chunks)
		}
		if _, ok := r.get(mk(i, 0).id); !ok {
			t.Fatalf("NAR %d not kept right after add", i)
		}
	}
	if _, ok := r.get(mk(0, 0).id); ok {
		t.Fatal("the least recently used NAR is still kept")
	}
	if len(r.byID) != r.lru.Len() || len(r.byID) > 10 {
		t.Fatalf("%d entries in the map, %d in the list", len(r.byID), r.lru.Len())
	}
	r.add(mk(100, resolvedMaxChunks/4+1))
	if _, ok := r.get(mk(100, 0).id); ok {
		t.Fatal("a NAR over a quarter of the bound was kept")
	}
	r.moved()
	if _, ok := r.get(mk(39, 0).id); ok {
		t.Fatal("an entry of the previous generation was served")
	}
}
