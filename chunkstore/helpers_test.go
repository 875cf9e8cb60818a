package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// testConfig is DefaultConfig in dir, with small segments so that tests
// roll and compact several of them.
func testConfig(dir string) Config {
	cfg := DefaultConfig()
	cfg.Dir = dir
	cfg.SegmentSize = 1 << 20
	return cfg
}

func openTest(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newTestStore(t *testing.T) *Store {
	t.Helper()
	return openTest(t, testConfig(t.TempDir()))
}

// testData is deterministic, semi-compressible data: short text lines mixed
// with random runs.
func testData(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, 0, n+64)
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

// mustIngest stores data and its manifest.
func mustIngest(t *testing.T, s *Store, data []byte) (*IngestResult, ManifestID) {
	t.Helper()
	res, err := s.Ingest(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.PutManifest(res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	return res, id
}

// served returns the whole served stream of a stored NAR.
func served(t *testing.T, s *Store, id ManifestID) []byte {
	t.Helper()
	nar, err := s.OpenNAR(id)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	n, err := nar.WriteRange(context.Background(), &b, 0, nar.Size)
	if err != nil || n != nar.Size {
		t.Fatalf("WriteRange: %d of %d bytes, %v", n, nar.Size, err)
	}
	return b.Bytes()
}

// decode decompresses concatenated frames as Nix would.
func decode(t *testing.T, frames []byte) []byte {
	t.Helper()
	dec, err := zstd.NewReader(bytes.NewReader(frames))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	raw, err := io.ReadAll(dec)
	if err != nil {
		t.Fatalf("served frames do not decode: %v", err)
	}
	return raw
}

// corruptFrame flips a byte in the middle of a chunk's stored frame, and
// lets the store's recent CRC checks age out (sendfile.go): the next read
// checks every frame, as it would some seconds later.
func corruptFrame(t *testing.T, s *Store, id ChunkID) {
	t.Helper()
	defer s.verified.forget()
	m, ok, err := s.getMeta(id)
	if err != nil || !ok {
		t.Fatalf("chunk %s: %v %v", id, ok, err)
	}
	f, err := os.OpenFile(s.segs.path(m.seg), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	pos := m.off + int64(m.frameSize)/2
	if _, err := f.ReadAt(b, pos); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xFF
	if _, err := f.WriteAt(b, pos); err != nil {
		t.Fatal(err)
	}
}

// segmentBytes is the disk space of the segment files.
func segmentBytes(t *testing.T, s *Store) int64 {
	t.Helper()
	var n int64
	entries, err := os.ReadDir(filepath.Join(s.cfg.Dir, "segments"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// failingReader returns its data, then an error instead of EOF.
type failingReader struct {
	r io.Reader
}

var errClientGone = errors.New("client went away")

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, errClientGone
	}
	return n, err
}
