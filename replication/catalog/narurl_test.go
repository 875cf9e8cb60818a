package catalog

import (
	"context"
	"errors"
	"testing"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/nixid"
)

// TestCatalog_NarURLIndex: an object uploaded with Nix's PUT protocol is found
// by the NAR URL its uploader used, until it is replaced, deleted, or its
// cache destroyed; the kept upload file counts as a live manifest.
func TestCatalog_NarURLIndex(t *testing.T) {
	n := startNode(t, t.TempDir(), true)
	waitLeader(t, n.cat)
	ctx, c := context.Background(), n.cat
	if err := c.CreateCache(ctx, Cache{Name: "a", StoreDir: "/nix/store"}); err != nil {
		t.Fatal(err)
	}
	const url1, url2 = "nar/1wlnvwh85kmn6mgmqh9qr9pprmqpliqj81khfgkp86chd89vca31.nar.xz", "nar/0y75j0w3ak4pkb5h3pz9dkjqxcbl9sl20r7nbmv00m9j3hiiyz3d.nar.zst"
	o := object("a", 1)
	o.Upload = &UploadedNAR{URL: url1, Compression: "xz", File: chunkstore.ManifestID{7}, FileSize: 10}
	if err := c.PutObject(ctx, o); err != nil {
		t.Fatal(err)
	}
	if got, err := c.ObjectByNarURL("a", url1); err != nil || got.StorePathHash != o.StorePathHash || got.Upload.File != o.Upload.File {
		t.Fatalf("by URL: %+v %v", got, err)
	}
	if _, err := c.ObjectByNarURL("b", url1); !errors.Is(err, ErrNoSuchNarURL) {
		t.Fatalf("other cache: %v", err)
	}
	live := map[chunkstore.ManifestID]bool{}
	_ = c.ForEachManifest(func(id chunkstore.ManifestID) error { live[id] = true; return nil })
	if !live[o.Upload.File] || !live[o.Manifest] {
		t.Fatalf("live manifests %v lack the object's or its upload file", live)
	}

	// Re-uploaded with another compression: the old URL no longer finds it.
	o.Upload = &UploadedNAR{URL: url2, Compression: "zstd"}
	if err := c.PutObject(ctx, o); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ObjectByNarURL("a", url1); !errors.Is(err, ErrNoSuchNarURL) {
		t.Fatalf("old URL after re-upload: %v", err)
	}
	if _, err := c.ObjectByNarURL("a", url2); err != nil {
		t.Fatal(err)
	}

	// Two paths with the same NAR file: deleting one keeps the other's entry.
	o2 := object("a", 2)
	o2.Upload = &UploadedNAR{URL: url2, Compression: "zstd"}
	if err := c.PutObject(ctx, o2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObjects(ctx, "a", []nixid.StorePathHash{o.StorePathHash}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.ObjectByNarURL("a", url2); err != nil || got.StorePathHash != o2.StorePathHash {
		t.Fatalf("after deleting the first of two: %+v %v", got, err)
	}
	if _, err := c.DeleteObjects(ctx, "a", []nixid.StorePathHash{o2.StorePathHash}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ObjectByNarURL("a", url2); !errors.Is(err, ErrNoSuchNarURL) {
		t.Fatalf("after deleting both: %v", err)
	}
	if indexed(t, c, url1) || indexed(t, c, url2) {
		t.Fatal("index entries outlive their objects")
	}

	// Destroying the cache drops the index with it.
	o3 := object("a", 3)
	o3.Upload = &UploadedNAR{URL: url1, Compression: "xz"}
	if err := c.PutObject(ctx, o3); err != nil {
		t.Fatal(err)
	}
	if err := c.DestroyCache(ctx, "a", HardDelete); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateCache(ctx, Cache{Name: "a", StoreDir: "/nix/store"}); err != nil {
		t.Fatal(err)
	}
	if indexed(t, c, url1) {
		t.Fatal("index entry outlives its destroyed cache")
	}
}

// indexed reports whether the state holds an index entry for url in cache a.
func indexed(t *testing.T, c *Catalog, url string) bool {
	t.Helper()
	ok, err := c.fsm.st.get(narURLKey("a", url), nil)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}
