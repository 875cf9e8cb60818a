package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/internal/serverconfig"
	"github.com/garret-cache/garret/replication/catalog"
)

// startWithCache starts a node on cfg with an empty cache of that name.
func startWithCache(t *testing.T, cfg *serverconfig.Config, cache nixid.CacheName) *Node {
	t.Helper()
	n, err := start(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Catalog().CreateCache(context.Background(), catalog.Cache{Name: cache}); err != nil {
		t.Fatal(err)
	}
	return n
}

// putPath stores size random bytes as a NAR of path hash h in cache.
func putPath(t *testing.T, n *Node, cache nixid.CacheName, h nixid.StorePathHash, size int) chunkstore.ManifestID {
	t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	res, err := n.Store().Ingest(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	id, err := n.Store().PutManifest(res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	o := catalog.Object{Cache: cache, StorePathHash: h, StorePath: "/nix/store/" + string(h) + "-p", NarSize: int64(size), Manifest: id}
	if err := n.Catalog().PutObject(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestCollector_SweepsAStoppedNode: the offline pass frees what a deleted
// path left behind, keeps what the catalog still references, and the node
// starts again afterwards and serves the kept path.
func TestCollector_SweepsAStoppedNode(t *testing.T) {
	dataDir := t.TempDir()
	cfg := testConfig(t, dataDir, "127.0.0.1:0")
	n := startWithCache(t, cfg, "c")
	ctx := context.Background()
	gone, kept := nixid.StorePathHash(strings.Repeat("0", 32)), nixid.StorePathHash(strings.Repeat("1", 32))
	putPath(t, n, "c", gone, 1<<20)
	keptID := putPath(t, n, "c", kept, 256<<10)
	if _, err := n.Catalog().DeleteObjects(ctx, "c", []nixid.StorePathHash{gone}); err != nil {
		t.Fatal(err)
	}
	// A running node holds the data dir (in this process pebble's own lock
	// refuses; across processes cmd/garretd's test sees ErrDataDirInUse).
	if c, err := OpenCollector(Config{Server: cfg}); err == nil {
		c.Close()
		t.Fatal("the collector opened the data dir of a running node")
	}
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := OpenCollector(Config{Server: cfg, Logger: log, SweepGrace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	st := c.Collect(ctx)
	if st.Err != "" {
		t.Fatal(st.Err)
	}
	if st.ObjectsExpired != 0 || st.ManifestsDeleted != 1 || st.ChunksDeleted < 2 || st.BytesFreed < 1<<20 {
		t.Fatalf("sweep of a stopped node: %+v; want the deleted path's manifest and its 1 MiB of chunks", st)
	}
	if st := c.Collect(ctx); st.Err != "" || st.ManifestsDeleted+st.ChunksDeleted != 0 {
		t.Fatalf("second pass: %+v", st)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	n, err = start(t, cfg)
	if err != nil {
		t.Fatalf("restart after the offline sweep: %v", err)
	}
	defer n.Shutdown(ctx)
	nar, err := n.Store().OpenNAR(keptID)
	if err != nil {
		t.Fatalf("kept path after the offline sweep: %v", err)
	}
	if _, err := nar.WriteRange(ctx, io.Discard, 0, nar.Size); err != nil || nar.RawSize != 256<<10 {
		t.Fatalf("reading the kept path (%d bytes): %v", nar.RawSize, err)
	}
}

// TestCollector_RefusesADataDirWithoutANode: a typo in data-dir must not
// look like an empty node whose chunks are all garbage.
func TestCollector_RefusesADataDirWithoutANode(t *testing.T) {
	_, err := OpenCollector(Config{Server: testConfig(t, t.TempDir(), "127.0.0.1:0")})
	if err == nil || !strings.Contains(err.Error(), "holds no node") || errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("collector on an empty data dir: %v", err)
	}
}
