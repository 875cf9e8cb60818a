package catalog

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/garret-cache/garret/internal/logbridge"
	"github.com/garret-cache/garret/internal/nixid"
)

// Keys of the FSM state.
var (
	keyApplied   = []byte("\x00applied")
	keyClusterID = []byte("\x00cluster-id")
)

func cacheKey(name nixid.CacheName) []byte  { return []byte("c/" + string(name)) }
func objectPrefix(c nixid.CacheName) []byte { return []byte("o/" + string(c) + "\x00") }
func objectKey(c nixid.CacheName, h nixid.StorePathHash) []byte {
	return append(objectPrefix(c), h...)
}
func filePrefix(c nixid.CacheName) []byte        { return []byte("f/" + string(c) + "\x00") }
func fileKey(c nixid.CacheName, n string) []byte { return append(filePrefix(c), n...) }
func revokedKey(jti string) []byte               { return []byte("r/" + jti) }

// ruleKey holds the revocation rule of a (subject, cache pattern) pair.
var rulePrefix = []byte("v/")

func ruleKey(r RevocationRule) []byte {
	return []byte("v/" + r.Subject + "\x00" + r.CachePattern)
}

// narURLKey indexes objects by the NAR URL their uploader used (see UploadedNAR).
func narURLPrefix(c nixid.CacheName) []byte          { return []byte("n/" + string(c) + "\x00") }
func narURLKey(c nixid.CacheName, url string) []byte { return append(narURLPrefix(c), url...) }

// tombstoneKey marks the name of a soft-deleted cache (soft-delete-caches):
// it can never be created again.
func tombstoneKey(name nixid.CacheName) []byte { return []byte("t/" + string(name)) }

// prefixEnd is the first key after every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte{}, p...)
	end[len(end)-1]++
	return end
}

// state is the FSM's pebble database, swappable on Restore. The pointer file
// CURRENT names the live directory so a swap is one atomic rename.
type state struct {
	mu  sync.RWMutex
	dir string // parent of the state directories
	db  *pebble.DB
	log pebble.Logger
	// fs is the file system pebble writes on (nil: the OS's). Tests give a
	// crashable one to lose what was not synced (crash_test.go); restore
	// still builds its tables on the OS's.
	fs vfs.FS
}

func openState(dir string, log *slog.Logger) (*state, error) {
	return openStateOn(dir, log, nil)
}

// openStateOn is openState with pebble on fs (nil: the OS's file system).
func openStateOn(dir string, log *slog.Logger, fs vfs.FS) (*state, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	pl := logbridge.Pebble(log.With("store", "catalog"))
	db, err := openPebble(livePath(dir), pl, fs)
	if err != nil {
		return nil, err
	}
	return &state{dir: dir, db: db, log: pl, fs: fs}, nil
}

// livePath is the state directory the CURRENT pointer in dir names.
func livePath(dir string) string {
	name := "state"
	if b, err := os.ReadFile(filepath.Join(dir, "CURRENT")); err == nil {
		name = strings.TrimSpace(string(b))
	}
	return filepath.Join(dir, name)
}

// stateCacheSize is the state's block cache. Every push reads the catalog
// several times (the token's revocation, the object it replaces, the
// object again in apply) and every narinfo once; with pebble's default of
// 8 MiB, a catalog of 10⁵ paths (36 MiB of tables) read most index and
// data blocks from the file again, and applying an entry took 4.9 ms
// (2.3 ms with 32 MiB). The chunk store's index has 64 MiB. Blocks are
// cached as they are read: a small catalog uses little of it.
const stateCacheSize = 32 << 20

// pebbleOptions are the catalog state's: a block cache of stateCacheSize,
// and on every level's tables a bloom filter (10 bits per key, ~1% false
// positives), so a point read of an absent key (the object a push adds, a
// token id never revoked) skips a table's data blocks. Tables written
// before (older nodes) get filters as compactions rewrite them.
func pebbleOptions(log pebble.Logger, cache *pebble.Cache, fs vfs.FS) *pebble.Options {
	o := &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: log, Cache: cache, FS: fs}
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return o
}

func openPebble(path string, log pebble.Logger, fs vfs.FS) (*pebble.DB, error) {
	cache := pebble.NewCache(stateCacheSize)
	defer cache.Unref() // the DB holds its own reference
	db, err := pebble.Open(path, pebbleOptions(log, cache, fs))
	if err != nil {
		return nil, fmt.Errorf("catalog: open state %s: %w", path, err)
	}
	return db, nil
}

// cacheBytes is what the state's block cache holds now (0 while closed).
func (s *state) cacheBytes() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return 0
	}
	return s.db.Metrics().BlockCache.Size
}

func (s *state) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// get reads one JSON value.
func (s *state) get(key []byte, v any) (bool, error) {
	return s.getWith(key, func(b []byte) error { return decodeInto(b, v) })
}

// getWith calls fn with the value stored under key, which is valid only
// while fn runs.
func (s *state) getWith(key []byte, fn func([]byte) error) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return false, ErrClosed
	}
	return readValue(s.db, key, fn)
}

func getJSON(r pebble.Reader, key []byte, v any) (bool, error) {
	return readValue(r, key, func(b []byte) error { return decodeInto(b, v) })
}

// decodeInto decodes b into v; a nil v only asks whether the key exists.
func decodeInto(b []byte, v any) error {
	if v == nil {
		return nil
	}
	return json.Unmarshal(b, v)
}

// readValue calls fn with the value stored under key; false if there is
// none.
//
// It seeks an iterator that reads the bloom filters of every level, L6
// included, rather than calling Get: pebble's Get skips L6's filters (for
// stores whose reads mostly hit), and most tables of a large catalog are in
// L6, so every read of an absent key (the object a push adds, a token id
// never revoked, a path Nix asks for that the cache lacks) read and
// decompressed an L6 data block. At 10⁶ keys of ~900 bytes, tables in the
// page cache: 11.5 µs per absent key with Get, 1.9 µs with the filters; a
// present key costs 13.5 µs against 11.1 (the filter probe), and in a small
// catalog either costs 2–4 µs.
func readValue(r pebble.Reader, key []byte, fn func([]byte) error) (found bool, err error) {
	it, err := r.NewIter(&pebble.IterOptions{UseL6Filters: true})
	if err != nil {
		return false, err
	}
	defer func() {
		if cerr := it.Close(); err == nil {
			err = cerr
		}
	}()
	// The default comparer's prefix is the whole key: SeekPrefixGE finds
	// key itself or nothing.
	if !it.SeekPrefixGE(key) || !bytes.Equal(it.Key(), key) {
		return false, it.Error()
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return false, err
	}
	return true, fn(v)
}

func appliedIndex(r pebble.Reader) (uint64, error) {
	b, closer, err := r.Get(keyApplied)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	defer closer.Close()
	return binary.LittleEndian.Uint64(b), nil
}

// scan visits keys with a prefix, decoding each value into a fresh T.
func scan[T any](s *state, prefix []byte, fn func(T) error) error {
	return scanFrom(s, prefix, prefix, fn)
}

// scanFrom is scan from the key from (within prefix) on. It holds the
// state's read lock throughout: fn must not wait for a write to apply.
func scanFrom[T any](s *state, prefix, from []byte, fn func(T) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: from, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		var v T
		b, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	return it.Error()
}
