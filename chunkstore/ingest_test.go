package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
)

func TestIngest_Dedup(t *testing.T) {
	s := newTestStore(t)
	data := testData(20, 2<<20)
	first, _ := mustIngest(t, s, data)
	if first.NewChunks == 0 || first.DedupChunks != 0 {
		t.Fatalf("first ingest: %+v", first)
	}
	stats, disk := mustStats(t, s), segmentBytes(t, s)

	tests := []struct {
		name      string
		data      []byte
		wantDedup int64 // at least this many raw bytes
	}{
		{"same NAR again", data, int64(len(data))},
		{"NAR with an edit", concat(data[:1000], []byte("EDIT"), data[1000:]), int64(len(data)) * 8 / 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.Ingest(context.Background(), bytes.NewReader(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if res.DedupRawBytes < tt.wantDedup || res.DedupChunks == 0 {
				t.Fatalf("dedup %d bytes in %d chunks, want >= %d", res.DedupRawBytes, res.DedupChunks, tt.wantDedup)
			}
			if res.NewChunks+res.DedupChunks != len(res.Manifest.Chunks) {
				t.Fatalf("%d new + %d dedup != %d chunks", res.NewChunks, res.DedupChunks, len(res.Manifest.Chunks))
			}
		})
	}
	// An identical re-ingest writes nothing at all.
	stats, disk = mustStats(t, s), segmentBytes(t, s)
	res, err := s.Ingest(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustStats(t, s); res.NewChunks != 0 || got != stats || segmentBytes(t, s) != disk {
		t.Fatalf("re-ingest: %d new chunks, %+v -> %+v, segments %d -> %d bytes",
			res.NewChunks, stats, got, disk, segmentBytes(t, s))
	}
}

func mustStats(t *testing.T, s *Store) Stats {
	t.Helper()
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestIngest_ConcurrentAndReopen(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxBytesInFlight = 1 << 20 // make the byte semaphore bite
	s := openTest(t, cfg)
	const n = 8
	ids := make([]ManifestID, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := s.Ingest(context.Background(), bytes.NewReader(testData(uint64(100+i), 700<<10)))
			if err != nil {
				t.Error(err)
				return
			}
			if ids[i], err = s.PutManifest(res.Manifest); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	check := func(s *Store) {
		t.Helper()
		for i, id := range ids {
			if !bytes.Equal(decode(t, served(t, s, id)), testData(uint64(100+i), 700<<10)) {
				t.Fatalf("NAR %d differs", i)
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ingest(context.Background(), bytes.NewReader([]byte("x"))); !errors.Is(err, ErrClosed) {
		t.Fatalf("ingest after Close: %v", err)
	}
	s2 := openTest(t, cfg)
	check(s2)
	// New segments after a reopen never append to old ones.
	mustIngest(t, s2, testData(200, 300<<10))
	check(s2)
}

func TestIngest_Errors(t *testing.T) {
	tests := []struct {
		name string
		run  func(s *Store) error
		want error
	}{
		{"reader fails", func(s *Store) error {
			_, err := s.Ingest(context.Background(), failingReader{bytes.NewReader(testData(30, 2<<20))})
			return err
		}, errClientGone},
		{"reader fails inside the first chunk", func(s *Store) error {
			_, err := s.Ingest(context.Background(), failingReader{bytes.NewReader([]byte("short"))})
			return err
		}, errClientGone},
		{"context cancelled", func(s *Store) error {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err := s.Ingest(ctx, bytes.NewReader(testData(31, 2<<20)))
			return err
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t)
			if err := tt.run(s); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			// The store still works afterwards.
			data := testData(32, 1<<20)
			_, id := mustIngest(t, s, data)
			if !bytes.Equal(decode(t, served(t, s, id)), data) {
				t.Fatal("NAR after a failed ingest differs")
			}
		})
	}
}
