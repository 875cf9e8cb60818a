package chunkstore

import (
	"bytes"
	"context"
	"testing"
)

func chunkIDs(t *testing.T, s *Store, data []byte) []ChunkID {
	t.Helper()
	res, err := s.Ingest(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]ChunkID, len(res.Manifest.Chunks))
	var total int64
	for i, c := range res.Manifest.Chunks {
		ids[i] = c.ID
		total += int64(c.Size)
	}
	if total != int64(len(data)) || res.RawSize != total || res.Manifest.RawSize() != total {
		t.Fatalf("chunks cover %d bytes, RawSize %d, input %d", total, res.RawSize, len(data))
	}
	return ids
}

func TestIngest_ChunkBoundaries(t *testing.T) {
	base := testData(7, 4<<20)
	cfg := DefaultConfig()
	tests := []struct {
		name       string
		data       []byte
		wantChunks func(n int) bool
	}{
		{"empty stream has no chunks", nil, func(n int) bool { return n == 0 }},
		{"one byte is one chunk", []byte{42}, func(n int) bool { return n == 1 }},
		{"below the threshold is one chunk", base[:cfg.NarSizeThreshold-1], func(n int) bool { return n == 1 }},
		{"at the threshold is cut", base[:cfg.NarSizeThreshold], func(n int) bool { return n >= 1 }},
		{"4 MiB is cut near the average size", base, func(n int) bool { return n > 4<<20/cfg.MaxSize && n < 4<<20/cfg.MinSize }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t)
			if ids := chunkIDs(t, s, tt.data); !tt.wantChunks(len(ids)) {
				t.Fatalf("%d chunks for %d bytes", len(ids), len(tt.data))
			}
		})
	}
}

// TestIngest_ThresholdZeroChunksEverything: nar-size-threshold = 0 (Attic:
// no chunking) cuts every NAR exactly as a threshold of 1 does.
func TestIngest_ThresholdZeroChunksEverything(t *testing.T) {
	open := func(threshold int) *Store {
		cfg := testConfig(t.TempDir())
		cfg.NarSizeThreshold = threshold
		return openTest(t, cfg)
	}
	zero, one := open(0), open(1)
	for _, n := range []int{1, 100, 64 << 10, 1 << 20} {
		data := testData(uint64(n), n)
		a, b := chunkIDs(t, zero, data), chunkIDs(t, one, data)
		if len(a) != len(b) || (n >= 1<<20 && len(a) < 2) {
			t.Fatalf("%d bytes: %d chunks with threshold 0, %d with 1", n, len(a), len(b))
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%d bytes: chunk %d differs between thresholds 0 and 1", n, i)
			}
		}
	}
}

func TestIngest_ChunksAreContentDefined(t *testing.T) {
	s := newTestStore(t)
	base := testData(8, 4<<20)
	orig := chunkIDs(t, s, base)
	again := chunkIDs(t, newTestStore(t), base)
	if len(orig) != len(again) {
		t.Fatalf("same input, %d then %d chunks", len(orig), len(again))
	}
	for i := range orig {
		if orig[i] != again[i] {
			t.Fatalf("same input, chunk %d differs", i)
		}
	}
	edits := []struct {
		name string
		data []byte
	}{
		{"insert 8 bytes at 100 KiB", concat(base[:100<<10], []byte("INSERTED"), base[100<<10:])},
		{"delete 1 byte at 1 KiB", concat(base[:1<<10], base[1<<10+1:])},
		{"prepend 3 bytes", concat([]byte("abc"), base)},
	}
	for _, e := range edits {
		t.Run(e.name, func(t *testing.T) {
			known := map[ChunkID]bool{}
			for _, id := range orig {
				known[id] = true
			}
			ids := chunkIDs(t, newTestStore(t), e.data)
			same := 0
			for _, id := range ids {
				if known[id] {
					same++
				}
			}
			if same < len(orig)*8/10 {
				t.Fatalf("only %d of %d chunk ids unchanged after the edit", same, len(orig))
			}
		})
	}
}

func concat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

func TestManifest_Encoding(t *testing.T) {
	m := Manifest{Chunks: []Chunk{{ID: ChunkID{1}, Size: 10}, {ID: ChunkID{2}, Size: 20}}}
	enc, _ := m.MarshalBinary()
	var back Manifest
	if err := back.UnmarshalBinary(enc); err != nil || back.ID() != m.ID() || back.RawSize() != 30 {
		t.Fatalf("round trip: %v, %+v", err, back)
	}
	if m.ID() == (Manifest{Chunks: m.Chunks[:1]}).ID() {
		t.Fatal("different manifests share an id")
	}
	bad := map[string][]byte{
		"empty":         nil,
		"wrong version": append([]byte{9}, enc[1:]...),
		"truncated":     enc[:len(enc)-1],
		"count too big": append([]byte{1, 3, 0, 0, 0}, enc[5:]...),
		"zero size":     (func() []byte { b, _ := Manifest{Chunks: []Chunk{{ID: ChunkID{1}}}}.MarshalBinary(); return b })(),
	}
	for name, b := range bad {
		t.Run(name, func(t *testing.T) {
			if err := new(Manifest).UnmarshalBinary(b); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
