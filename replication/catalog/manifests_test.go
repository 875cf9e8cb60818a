package catalog

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/garret-cache/garret/chunkstore"
)

// TestOpenManifests_StoppedNode: the manifest set of a stopped node reads
// as the running catalog read it; a missing or open catalog is refused.
func TestOpenManifests_StoppedNode(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, true)
	waitLeader(t, n.cat)
	ctx := context.Background()
	if err := n.cat.CreateCache(ctx, Cache{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := n.cat.PutObject(ctx, object("m", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.cat.PutFile(ctx, File{Cache: "m", Name: "log/x.drv", Manifest: chunkstore.ManifestID{9}}); err != nil {
		t.Fatal(err)
	}
	want := map[chunkstore.ManifestID]bool{}
	_ = n.cat.ForEachManifest(func(id chunkstore.ManifestID) error { want[id] = true; return nil })
	catDir := filepath.Join(dir, "catalog")
	if m, err := OpenManifests(catDir); err == nil {
		m.Close()
		t.Fatal("opened the state of a running catalog")
	}
	n.stop()

	m, err := OpenManifests(catDir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got := map[chunkstore.ManifestID]bool{}
	if err := m.ForEach(func(id chunkstore.ManifestID) error { got[id] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || len(got) != len(want) {
		t.Fatalf("stopped node's manifests %v, running node's %v", got, want)
	}
	for id := range want {
		if !got[id] {
			t.Fatalf("manifest %v missing offline", id)
		}
	}
	if _, err := OpenManifests(t.TempDir()); err == nil {
		t.Fatal("opened a catalog that does not exist")
	}
}
