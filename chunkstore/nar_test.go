package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestNAR_ServesConcatenatedFrames(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"one byte", []byte{7}},
		{"small NAR", testData(1, 1000)},
		{"large NAR", testData(2, 3<<20)},
		{"repeated chunks", bytes.Repeat(testData(3, 300<<10), 4)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t)
			res, id := mustIngest(t, s, tt.data)
			out := served(t, s, id)
			if !bytes.Equal(decode(t, out), tt.data) {
				t.Fatal("served frames do not decode to the input")
			}
			nar, err := s.OpenNAR(id)
			if err != nil {
				t.Fatal(err)
			}
			if nar.Size != int64(len(out)) || nar.Size != res.StoredSize || nar.RawSize != int64(len(tt.data)) {
				t.Fatalf("sizes: NAR %d/%d, served %d, StoredSize %d", nar.Size, nar.RawSize, len(out), res.StoredSize)
			}
			raw, err := io.ReadAll(nar.RawReader(context.Background()))
			if err != nil || !bytes.Equal(raw, tt.data) {
				t.Fatalf("RawReader: %v", err)
			}
		})
	}
}

func TestNAR_WriteRange(t *testing.T) {
	s := newTestStore(t)
	_, id := mustIngest(t, s, testData(4, 2<<20))
	full := served(t, s, id)
	nar, _ := s.OpenNAR(id)
	size := nar.Size
	tests := []struct {
		name        string
		off, length int64
		wantErr     bool
	}{
		{"first byte", 0, 1, false},
		{"across a frame boundary", 5, 70000, false},
		{"last ten bytes", size - 10, 10, false},
		{"middle", 100000, 400000, false},
		{"empty at the end", size, 0, false},
		{"whole", 0, size, false},
		{"past the end", size - 1, 2, true},
		{"negative offset", -1, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			n, err := nar.WriteRange(context.Background(), &b, tt.off, tt.length)
			if tt.wantErr {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil || n != tt.length || !bytes.Equal(b.Bytes(), full[tt.off:tt.off+tt.length]) {
				t.Fatalf("%d bytes, %v", n, err)
			}
		})
	}
}

func TestNAR_CorruptFrameIsDetectedAndDropped(t *testing.T) {
	for _, via := range []string{"WriteRange", "Frame"} {
		t.Run(via, func(t *testing.T) {
			s := newTestStore(t)
			res, id := mustIngest(t, s, testData(5, 500<<10))
			victim := res.Manifest.Chunks[1].ID
			nar, err := s.OpenNAR(id)
			if err != nil {
				t.Fatal(err)
			}
			corruptFrame(t, s, victim)
			var sent int64
			if via == "WriteRange" {
				sent, err = nar.WriteRange(context.Background(), io.Discard, 0, nar.Size)
				if first := int64(nar.metas[0].frameSize); sent != first {
					t.Fatalf("sent %d bytes, want only the first frame's %d", sent, first)
				}
			} else {
				_, err = s.Frame(victim)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("corrupt frame: %v", err)
			}
			if ok, _ := s.HasChunk(victim); ok {
				t.Fatal("corrupt chunk still stored")
			}
			var missing *MissingChunksError
			if _, err := s.OpenNAR(id); !errors.As(err, &missing) || len(missing.Chunks) != 1 || missing.Chunks[0] != victim {
				t.Fatalf("after dropping it: %v", err)
			}
		})
	}
}

func TestStore_MissingAndUnknown(t *testing.T) {
	s := newTestStore(t)
	m := Manifest{Chunks: []Chunk{{ID: ChunkID{1}, Size: 5}, {ID: ChunkID{2}, Size: 5}}}
	id, err := s.PutManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenNAR(id); !errors.Is(err, ErrMissingChunks) {
		t.Fatalf("missing chunks: %v", err)
	}
	if _, err := s.OpenNAR(ManifestID{9}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown manifest: %v", err)
	}
	if _, err := s.Manifest(ManifestID{9}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown manifest: %v", err)
	}
	if _, err := s.Frame(ChunkID{1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown chunk: %v", err)
	}
	if got, err := s.Manifest(id); err != nil || got.ID() != id {
		t.Fatalf("Manifest: %v", err)
	}
}

func TestStore_PutFrame(t *testing.T) {
	data := testData(6, 500<<10)
	src := newTestStore(t)
	res, id := mustIngest(t, src, data)
	victim := res.Manifest.Chunks[1].ID
	good, err := src.Frame(victim)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()

	dst := newTestStore(t)
	if _, err := dst.PutManifest(res.Manifest); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		frame   []byte
		wantErr error
	}{
		{"other content", enc.EncodeAll([]byte("wrong"), nil), ErrCorrupt},
		{"not zstd", []byte("garbage"), ErrCorrupt},
		{"truncated", good[:len(good)/2], ErrCorrupt},
		{"the right frame", good, nil},
		{"again", good, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := dst.PutFrame(victim, tt.frame); !errors.Is(err, tt.wantErr) {
				t.Fatalf("PutFrame: %v, want %v", err, tt.wantErr)
			}
			ok, _ := dst.HasChunk(victim)
			if ok != (tt.wantErr == nil) {
				t.Fatalf("HasChunk %v after %v", ok, tt.wantErr)
			}
		})
	}
	for _, c := range res.Manifest.Chunks {
		f, err := src.Frame(c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := dst.PutFrame(c.ID, f); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(decode(t, served(t, dst, id)), data) {
		t.Fatal("NAR copied frame by frame differs")
	}
}
