package catalog

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/logbridge"
)

// Manifests is a read-only view of the manifest set of a catalog that no
// node has open: the FSM state in pebble, read without Raft, for the GC
// sweep of a stopped node (garretd --mode garbage-collector-once). It is the
// state as last applied on that node; entries in its Raft log that were
// never applied are not consulted.
type Manifests struct{ st *state }

// OpenManifests opens the FSM state under dir (a Config.Dir) read-only. It
// fails if there is no state there, or if a running node holds it (pebble's
// directory lock).
func OpenManifests(dir string) (*Manifests, error) {
	fsmDir := filepath.Join(dir, "fsm")
	path := livePath(fsmDir)
	db, err := pebble.Open(path, &pebble.Options{ReadOnly: true, ErrorIfNotExists: true, Logger: logbridge.Pebble(slog.Default())})
	if err != nil {
		return nil, fmt.Errorf("catalog: open state %s read-only: %w", path, err)
	}
	return &Manifests{st: &state{dir: fsmDir, db: db}}, nil
}

// ForEach visits the manifest of every object and file.
func (m *Manifests) ForEach(fn func(chunkstore.ManifestID) error) error {
	return forEachManifest(m.st, fn)
}

// Close releases the state.
func (m *Manifests) Close() error { return m.st.close() }

// forEachManifest visits the manifest of every object and file in st.
func forEachManifest(st *state, fn func(chunkstore.ManifestID) error) error {
	return forEachStored(st, func(id chunkstore.ManifestID, _ int64, _ time.Time) error { return fn(id) })
}

// forEachStored visits the manifest of every object and file in st with
// what the change log records of it: the stored size (an object's
// FileSize, a kept NAR file's or a file's Size) and when it was pushed.
func forEachStored(st *state, fn func(id chunkstore.ManifestID, size int64, at time.Time) error) error {
	if err := scan(st, []byte("o/"), func(o Object) error {
		if o.Upload != nil && !o.Upload.File.IsZero() { // the NAR file as uploaded, when kept
			if err := fn(o.Upload.File, o.Upload.FileSize, o.CreatedAt); err != nil {
				return err
			}
		}
		return fn(o.Manifest, o.FileSize, o.CreatedAt)
	}); err != nil {
		return err
	}
	return scan(st, []byte("f/"), func(f File) error { return fn(f.Manifest, f.Size, f.CreatedAt) })
}
