package catalog

import (
	"encoding/base64"
	"encoding/binary"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
	"github.com/nix-community/go-nix/pkg/nixbase32"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/nixid"
)

// TestSnapshotScale measures a Raft snapshot of a large catalog: persisting
// it into a FileSnapshotStore and restoring a state from that file (what a
// joining node does). It runs only with GARRET_SNAPSHOT_BENCH=<objects>
// (issue 13 measures 1000000):
//
//	GARRET_SNAPSHOT_BENCH=1000000 go test -tags pebblegozstd -run TestSnapshotScale -v -timeout 30m ./replication/catalog/
//
// The state holds what putObject writes for each object: the object (JSON
// of ~400-600 bytes with random hashes, references, a signature, sizes), a
// change record, and for a quarter of them (Nix PUT uploads) a NAR URL index
// entry.
func TestSnapshotScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("GARRET_SNAPSHOT_BENCH"))
	if n <= 0 {
		t.Skip("set GARRET_SNAPSHOT_BENCH=<objects> to measure snapshots")
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("load average at start: %s", b[:len(b)-1])
	}
	dir := t.TempDir()
	st, err := openState(filepath.Join(dir, "src"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	start := time.Now()
	var valueBytes int64
	fillScaleState(t, st.db, n, &valueBytes)
	t.Logf("filled %d objects in %.1f s; %.0f bytes of keys and values per object; pebble tables %.1f MiB",
		n, time.Since(start).Seconds(), float64(valueBytes)/float64(n), mib(dirBytes(filepath.Join(dir, "src"))))

	store, err := raft.NewFileSnapshotStore(filepath.Join(dir, "snaps"), 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	fsnap, err := (&fsm{st: st, log: quiet}).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	sink, err := store.Create(raft.SnapshotVersionMax, uint64(n), 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := fsnap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	fsnap.Release()
	persist := time.Since(start)
	metas, err := store.List()
	if err != nil || len(metas) != 1 {
		t.Fatalf("snapshots %v, %v", metas, err)
	}
	size := metas[0].Size

	dst, err := openState(filepath.Join(dir, "dst"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.close()
	start = time.Now()
	_, rc, err := store.Open(metas[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := dst.restore(rc)
	_ = rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	restore := time.Since(start)
	if idx != uint64(n) {
		t.Fatalf("restored applied index %d, want %d", idx, n)
	}
	t.Logf("snapshot %.1f MiB; persist %.1f s; restore %.1f s (restored tables %.1f MiB); total %.1f s",
		mib(size), persist.Seconds(), restore.Seconds(), mib(dirBytes(filepath.Join(dir, "dst"))), (persist + restore).Seconds())
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("load average at end: %s", b[:len(b)-1])
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// dirBytes is the size of dir's pebble tables.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) == ".sst" {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// fillScaleState writes n realistic objects into db, in batches as the FSM
// does, then flushes it; *bytes counts the keys and values written.
func fillScaleState(t *testing.T, db *pebble.DB, n int, bytes *int64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	hash := func() nixid.StorePathHash {
		var b [20]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return nixid.StorePathHash(nixbase32.EncodeToString(b[:]))
	}
	names := []string{"glibc-2.40-66", "bash-5.2p37", "openssl-3.3.2", "python3-3.12.8", "gcc-14.2.1.20250322-lib",
		"zlib-1.3.1", "coreutils-9.5", "systemd-257.3", "perl-5.40.0", "rust-lib-src", "source", "hook",
		"ncurses-6.5", "libffi-3.4.6", "xz-5.6.3", "linux-headers-6.12", "node_modules", "vendor-staging"}
	name := func() string { return names[rng.IntN(len(names))] }
	var sig [64]byte
	const cache = nixid.CacheName("main")
	if err := db.Set(cacheKey(cache), mustJSON(Cache{Name: cache, StoreDir: "/nix/store", Priority: 40}), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	b := db.NewBatch()
	const perEntry = 8 // objects per log entry
	for i := range n {
		h := hash()
		refs := make([]string, rng.IntN(4))
		for j := range refs {
			refs[j] = string(hash()) + "-" + name()
		}
		var nar nixid.NarHash
		var man chunkstore.ManifestID
		for j := range nar {
			nar[j], man[j] = byte(rng.Uint32()), byte(rng.Uint32())
		}
		for j := range sig {
			sig[j] = byte(rng.Uint32())
		}
		narSize := rng.Int64N(64 << 20)
		at := base.Add(time.Duration(i) * 37 * time.Millisecond)
		o := Object{Cache: cache, StorePathHash: h, StorePath: "/nix/store/" + string(h) + "-" + name(),
			References: refs, Deriver: string(hash()) + "-" + name() + ".drv", System: "x86_64-linux",
			NarHash: nar, NarSize: narSize, Manifest: man, FileSize: narSize * 2 / 5, CreatedAt: at, CreatedBy: "ci-builder"}
		if i%3 == 0 {
			o.Sigs = []string{"cache.example.org-1:" + base64.StdEncoding.EncodeToString(sig[:])}
		}
		if i%4 == 0 {
			var fh [32]byte
			for j := range fh {
				fh[j] = byte(rng.Uint32())
			}
			o.Upload = &UploadedNAR{URL: "nar/" + nixbase32.EncodeToString(fh[:]) + ".nar.zst", Compression: "zstd"}
		}
		set := func(k, v []byte) {
			*bytes += int64(len(k) + len(v))
			if err := b.Set(k, v, nil); err != nil {
				t.Fatal(err)
			}
		}
		v := mustJSON(o)
		if i < 2 {
			t.Logf("object %d: %d bytes: %s", i, len(v), v)
		}
		set(objectKey(cache, h), v)
		if o.Upload != nil {
			set(narURLKey(cache, o.Upload.URL), mustJSON(h))
		}
		idx := uint64(1 + i/perEntry)
		ch := Change{Op: OpPutObject, Cache: cache, Hash: h, Manifest: man, Size: o.FileSize, At: at}
		set(changeKey(Cursor{Index: idx, Pos: uint32(i % perEntry)}), mustJSON(ch))
		if b.Len() > 4<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				t.Fatal(err)
			}
			b = db.NewBatch()
		}
	}
	var idx [8]byte
	binary.LittleEndian.PutUint64(idx[:], uint64(n))
	if err := b.Set(keyApplied, idx[:], nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	// Let the compactions the fill started end, so they do not share the
	// cores with what is measured.
	for db.Metrics().Compact.NumInProgress > 0 {
		time.Sleep(100 * time.Millisecond)
	}
}
