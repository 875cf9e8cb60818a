package catalog

import (
	"context"
	"errors"
	"testing"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/nixid"
)

// TestCatalog_SoftDeleteKeepsTheName: a soft-deleted cache reads as missing
// everywhere and its name is refused like an existing cache's; a hard
// delete frees the name. Both drop the objects and files, so the sweep
// frees their chunks.
func TestCatalog_SoftDeleteKeepsTheName(t *testing.T) {
	n := startNode(t, t.TempDir(), true)
	waitLeader(t, n.cat)
	ctx := context.Background()
	c := n.cat
	if err := c.CreateCache(ctx, Cache{Name: "bystander"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     nixid.CacheName
		how      Deletion
		recreate error // creating the name again after the delete
	}{{"c-soft", SoftDelete, ErrCacheExists}, {"c-hard", HardDelete, nil}} {
		name, cache := tc.name, Cache{Name: tc.name}
		if err := c.CreateCache(ctx, cache); err != nil {
			t.Fatal(err)
		}
		if err := c.PutObject(ctx, object(cache.Name, 1)); err != nil {
			t.Fatal(err)
		}
		if err := c.PutFile(ctx, File{Cache: cache.Name, Name: "log/x.drv", Manifest: chunkstore.ManifestID{7}}); err != nil {
			t.Fatal(err)
		}
		if err := c.DestroyCache(ctx, cache.Name, tc.how); err != nil {
			t.Fatalf("%s delete: %v", name, err)
		}
		if _, err := c.Cache(cache.Name); !errors.Is(err, ErrNoSuchCache) {
			t.Fatalf("%s: read after delete: %v", name, err)
		}
		if _, err := c.Object(cache.Name, hashOf(1)); !errors.Is(err, ErrNoSuchObject) {
			t.Fatalf("%s: object after delete: %v", name, err)
		}
		if err := c.PutObject(ctx, object(cache.Name, 2)); !errors.Is(err, ErrNoSuchCache) {
			t.Fatalf("%s: push after delete: %v", name, err)
		}
		if err := c.DestroyCache(ctx, cache.Name, tc.how); !errors.Is(err, ErrNoSuchCache) {
			t.Fatalf("%s: delete twice: %v", name, err)
		}
		if cs, _ := c.Caches(); len(cs) != 1 || cs[0].Name != "bystander" {
			t.Fatalf("%s: caches listed after delete: %+v", name, cs)
		}
		if err := c.CreateCache(ctx, cache); !errors.Is(err, tc.recreate) {
			t.Fatalf("%s: create the name again: %v, want %v", name, err, tc.recreate)
		}
	}
	var manifests int
	_ = c.ForEachManifest(func(chunkstore.ManifestID) error { manifests++; return nil })
	if manifests != 0 {
		t.Fatalf("%d manifests still referenced after both deletes", manifests)
	}

	// A snapshot carries the tombstone: a node restored from it refuses the name too.
	st := restoredCopy(t, c).st
	b := st.db.NewIndexedBatch()
	defer b.Close()
	if r := applyCommand(&applier{Batch: b}, cmdOf(&createCache{Cache: &Cache{Name: "c-soft"}})); !errors.Is(r.err, ErrCacheExists) {
		t.Fatalf("create a soft-deleted name on a restored replica: %v", r.err)
	}
	if r := applyCommand(&applier{Batch: b}, cmdOf(&createCache{Cache: &Cache{Name: "c-new"}})); r.err != nil {
		t.Fatalf("create a fresh name on a restored replica: %v", r.err)
	}
}
