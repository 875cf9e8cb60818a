package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/zstd"
)

func openTest(t *testing.T, dir string) *Store {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Dir = dir
	s, err := Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testData is deterministic, semi-compressible data.
func testData(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, 0, n)
	for len(b) < n {
		if r.IntN(2) == 0 {
			b = fmt.Appendf(b, "line %d value %d\n", r.IntN(1000), r.IntN(50))
		} else {
			for range 64 {
				b = append(b, byte(r.Uint32()))
			}
		}
	}
	return b[:n]
}

func ingestAndServe(t *testing.T, s *Store, data []byte) (*IngestResult, ManifestID, []byte) {
	t.Helper()
	res, err := s.Ingest(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.PutManifest(res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	nar, err := s.OpenNAR(id)
	if err != nil {
		t.Fatal(err)
	}
	var served bytes.Buffer
	if _, err := nar.WriteRange(context.Background(), &served, 0, nar.Size); err != nil {
		t.Fatal(err)
	}
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	raw, err := dec.DecodeAll(served.Bytes(), nil)
	if err != nil || !bytes.Equal(raw, data) {
		t.Fatalf("served frames decode to %d bytes (%v), want the %d input bytes", len(raw), err, len(data))
	}
	if nar.Size != res.StoredSize || nar.RawSize != int64(len(data)) {
		t.Fatalf("sizes: nar %d/%d result %d", nar.Size, nar.RawSize, res.StoredSize)
	}
	return res, id, served.Bytes()
}

func TestIngest_RoundTripRangesAndDedup(t *testing.T) {
	s := openTest(t, t.TempDir())
	small := testData(1, 1000)
	res, _, _ := ingestAndServe(t, s, small)
	if len(res.Manifest.Chunks) != 1 {
		t.Fatalf("small NAR in %d chunks", len(res.Manifest.Chunks))
	}
	data := testData(2, 3<<20)
	res, id, served := ingestAndServe(t, s, data)
	if len(res.Manifest.Chunks) < 8 || res.NewChunks == 0 {
		t.Fatalf("large NAR in %d chunks, %d new", len(res.Manifest.Chunks), res.NewChunks)
	}
	nar, _ := s.OpenNAR(id)
	for _, rg := range [][2]int64{{0, 1}, {5, 70000}, {nar.Size - 10, 10}, {100000, 400000}} {
		var b bytes.Buffer
		if _, err := nar.WriteRange(context.Background(), &b, rg[0], rg[1]); err != nil || !bytes.Equal(b.Bytes(), served[rg[0]:rg[0]+rg[1]]) {
			t.Fatalf("range %v: %v", rg, err)
		}
	}
	again, err := s.Ingest(context.Background(), bytes.NewReader(data))
	if err != nil || again.NewChunks != 0 || again.DedupRawBytes != int64(len(data)) {
		t.Fatalf("re-ingest: %+v %v", again, err)
	}
	// An insertion near the start leaves most chunk ids unchanged.
	edited := append(append(append([]byte{}, data[:1000]...), "INSERTED"...), data[1000:]...)
	ed, err := s.Ingest(context.Background(), bytes.NewReader(edited))
	if err != nil || ed.DedupRawBytes < int64(len(data))*8/10 {
		t.Fatalf("edited: dedup %d of %d (%v)", ed.DedupRawBytes, len(data), err)
	}
	raw := nar.RawReader(context.Background())
	got, err := io.ReadAll(raw)
	raw.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("RawReader: %v", err)
	}
}

func TestNAR_CorruptAndMissing(t *testing.T) {
	s := openTest(t, t.TempDir())
	res, id, _ := ingestAndServe(t, s, testData(3, 500<<10))
	victim := res.Manifest.Chunks[1].ID
	frame, err := s.Frame(victim)
	if err != nil {
		t.Fatal(err)
	}
	frame[len(frame)/2] ^= 0xFF
	if err := s.db.Set(key(prefixFrame, victim), frame, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	nar, err := s.OpenNAR(id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nar.WriteRange(context.Background(), io.Discard, 0, nar.Size); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt frame: %v", err)
	}
	if _, err := s.OpenNAR(id); !errors.Is(err, ErrMissingChunks) {
		t.Fatalf("after dropping the corrupt chunk: %v", err)
	}
	if _, err := s.OpenNAR(ManifestID{1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown manifest: %v", err)
	}
	// PutFrame heals it with the right frame and rejects a wrong one.
	good := testData(3, 500<<10)
	enc, _ := zstd.NewWriter(nil)
	var off int64
	for _, c := range res.Manifest.Chunks[:1] {
		off += int64(c.Size)
	}
	right := enc.EncodeAll(good[off:off+int64(res.Manifest.Chunks[1].Size)], nil)
	if err := s.PutFrame(victim, enc.EncodeAll([]byte("wrong"), nil)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("wrong frame accepted: %v", err)
	}
	if err := s.PutFrame(victim, right); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenNAR(id); err != nil {
		t.Fatalf("after PutFrame: %v", err)
	}
}

type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("client went away")
	}
	k, err := f.r.Read(p[:min(len(p), f.n)])
	f.n -= k
	return k, err
}

func TestSweep_KeepsLiveRemovesOrphans(t *testing.T) {
	s := openTest(t, t.TempDir())
	_, live, _ := ingestAndServe(t, s, testData(4, 1<<20))
	_, dead, _ := ingestAndServe(t, s, testData(5, 1<<20))
	if _, err := s.Ingest(context.Background(), &failingReader{r: bytes.NewReader(testData(6, 2<<20)), n: 1 << 20}); err == nil {
		t.Fatal("failing reader did not fail the ingest")
	}
	before, _ := s.Stats()
	// A generous grace keeps everything.
	if st, err := s.Sweep(context.Background(), func(id ManifestID) bool { return id == live }, time.Hour); err != nil || st.ChunksDeleted != 0 {
		t.Fatalf("sweep with grace: %+v %v", st, err)
	}
	st, err := s.Sweep(context.Background(), func(id ManifestID) bool { return id == live }, 0)
	if err != nil || st.ManifestsDeleted != 1 || st.ChunksDeleted == 0 {
		t.Fatalf("sweep: %+v %v", st, err)
	}
	after, _ := s.Stats()
	if after.Chunks >= before.Chunks {
		t.Fatalf("chunks %d -> %d", before.Chunks, after.Chunks)
	}
	if _, err := s.OpenNAR(live); err != nil {
		t.Fatalf("live NAR after sweep: %v", err)
	}
	if _, err := s.OpenNAR(dead); !errors.Is(err, ErrNotFound) {
		t.Fatalf("dead NAR after sweep: %v", err)
	}
	nar, _ := s.OpenNAR(live)
	m, _ := s.Manifest(live)
	if int64(len(m.Chunks)) != after.Chunks || nar.RawSize != 1<<20 {
		t.Fatalf("%d chunks left, live manifest has %d", after.Chunks, len(m.Chunks))
	}
}

func TestIngest_ConcurrentAndReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ids := make([]ManifestID, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.Ingest(context.Background(), bytes.NewReader(testData(uint64(10+i), 700<<10)))
			if err != nil {
				t.Error(err)
				return
			}
			ids[i], _ = s.PutManifest(res.Manifest)
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, dir)
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	for i, id := range ids {
		nar, err := s2.OpenNAR(id)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if _, err := nar.WriteRange(context.Background(), &b, 0, nar.Size); err != nil {
			t.Fatal(err)
		}
		raw, err := dec.DecodeAll(b.Bytes(), nil)
		if err != nil || !bytes.Equal(raw, testData(uint64(10+i), 700<<10)) {
			t.Fatalf("NAR %d after reopen differs (%v)", i, err)
		}
	}
}
