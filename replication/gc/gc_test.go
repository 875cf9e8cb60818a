package gc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/garret-cache/garret/chunkstore"
)

func openStore(t *testing.T) *chunkstore.Store {
	t.Helper()
	cfg := chunkstore.DefaultConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "chunks")
	s, err := chunkstore.Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func put(t *testing.T, s *chunkstore.Store, data []byte) chunkstore.ManifestID {
	t.Helper()
	res, err := s.Ingest(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.PutManifest(res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestSweeper: what the manifest set references stays, the rest goes; with
// a catalog that cannot be confirmed current nothing is deleted.
func TestSweeper(t *testing.T) {
	s := openStore(t)
	kept, dropped := put(t, s, bytes.Repeat([]byte("kept "), 1<<16)), put(t, s, bytes.Repeat([]byte("gone "), 1<<16))
	manifests := func(f func(chunkstore.ManifestID) error) error { return f(kept) }
	stale := errors.New("no leader known")
	sw := &Sweeper{Store: s, Manifests: manifests, Grace: time.Nanosecond, Current: func(context.Context) error { return stale }}
	st, err := sw.Sweep(context.Background())
	if !errors.Is(err, ErrCatalogNotCurrent) || st.ManifestsDeleted+st.ChunksDeleted != 0 {
		t.Fatalf("with a stale catalog: %+v, %v", st, err)
	}
	sw.Current = func(context.Context) error { return nil }
	if st, err = sw.Sweep(context.Background()); err != nil || st.ManifestsDeleted != 1 || st.ChunksDeleted == 0 {
		t.Fatalf("sweep: %+v, %v", st, err)
	}
	if _, err := s.Manifest(kept); err != nil {
		t.Fatalf("the referenced manifest went: %v", err)
	}
	if _, err := s.Manifest(dropped); err == nil {
		t.Fatal("the unreferenced manifest stayed")
	}
}
