package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/narinfo"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/catalog"
)

// TestGovernMemory: the runtime's soft limit follows base + what the caches
// hold, and stays where it was last set once the node stops.
func TestGovernMemory(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	var held atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); governMemory(ctx, 96<<20, time.Millisecond, held.Load) }()
	waitLimit := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for debug.SetMemoryLimit(-1) != want {
			if time.Now().After(deadline) {
				t.Fatalf("soft limit %d, want %d", debug.SetMemoryLimit(-1), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitLimit(96 << 20)
	held.Store(40 << 20)
	waitLimit(136 << 20)
	held.Store(8 << 20)
	waitLimit(104 << 20)
	cancel()
	<-done
	held.Store(0)
	time.Sleep(10 * time.Millisecond)
	if got := debug.SetMemoryLimit(-1); got != 104<<20 {
		t.Fatalf("after stop the limit moved to %d", got)
	}
}

// TestNode_CacheBytes: a node's block caches count what they hold. After a
// restart the catalog's and the index's data are in tables, which reading
// the objects and their NARs brings into the caches.
func TestNode_CacheBytes(t *testing.T) {
	dataDir := t.TempDir()
	n := startWithCache(t, testConfig(t, dataDir, "127.0.0.1:0"), "c")
	ctx := context.Background()
	key, _ := narinfo.GenerateKeypair("pub")
	if err := n.Catalog().CreateCache(ctx, catalog.Cache{Name: "pub", Keypair: key, IsPublic: true, StoreDir: "/nix/store"}); err != nil {
		t.Fatal(err)
	}
	pub := nixid.StorePathHash("0123456789abcdfghijklmnpqrsvwxyz")
	putPath(t, n, "pub", pub, 1024)
	var paths []nixid.StorePathHash
	var nars []chunkstore.ManifestID
	for i := range 20 {
		h := nixid.StorePathHash(fmt.Sprintf("%032d", i))
		nars = append(nars, putPath(t, n, "c", h, 128<<10))
		paths = append(paths, h)
	}
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := start(t, testConfig(t, dataDir, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(ctx)
	for i, h := range paths {
		if _, err := n.Catalog().Object("c", h); err != nil {
			t.Fatal(err)
		}
		nar, err := n.Store().OpenNAR(nars[i])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nar.WriteRange(ctx, io.Discard, 0, nar.Size); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get(n.URL() + "pub/" + string(pub) + ".narinfo")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("narinfo: %d %s", resp.StatusCode, body)
	}
	if n.Store().CacheBytes() <= 0 || n.Catalog().CacheBytes() <= 0 || n.api.CacheBytes() <= int64(len(body)) {
		t.Fatalf("after reads the caches hold %d (index), %d (catalog) and %d (narinfos, one of %d bytes) bytes",
			n.Store().CacheBytes(), n.Catalog().CacheBytes(), n.api.CacheBytes(), len(body))
	}
	if got, want := n.cacheBytes(), n.Store().CacheBytes()+n.Catalog().CacheBytes()+n.api.CacheBytes(); got != want {
		t.Fatalf("cacheBytes %d, want %d", got, want)
	}
}
