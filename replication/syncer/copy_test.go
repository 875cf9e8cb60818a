package syncer_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/replication/cluster/clustertest"
	"github.com/garret-cache/garret/replication/p2p"
	"github.com/garret-cache/garret/replication/syncer"
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

// storeRemote serves another store's frames, and records the most frame
// bytes that were asked for and not yet read to the end.
type storeRemote struct {
	src      *chunkstore.Store
	mu       sync.Mutex
	inFlight int64
	most     int64
	requests int
}

func (r *storeRemote) FetchManifest(context.Context, chunkstore.ManifestID) error { return nil }

func (r *storeRemote) Remote(context.Context, []chunkstore.ChunkID) (chunkstore.Remote, error) {
	return r, nil
}

func (r *storeRemote) FrameSize(id chunkstore.ChunkID) (uint32, bool) {
	f, err := r.src.Frame(id)
	return uint32(len(f)), err == nil
}

func (r *storeRemote) Frames(_ context.Context, ids []chunkstore.ChunkID) (chunkstore.FrameIter, error) {
	var size int64
	for _, id := range ids {
		n, _ := r.FrameSize(id)
		size += int64(n)
	}
	r.mu.Lock()
	r.requests++
	r.inFlight += size
	r.most = max(r.most, r.inFlight)
	r.mu.Unlock()
	return &storeFrames{r: r, ids: ids, size: size}, nil
}

type storeFrames struct {
	r    *storeRemote
	ids  []chunkstore.ChunkID
	size int64
}

func (it *storeFrames) Next() ([]byte, error) {
	time.Sleep(time.Millisecond) // a network: other groups may start meanwhile
	id := it.ids[0]
	it.ids = it.ids[1:]
	return it.r.src.Frame(id)
}

func (it *storeFrames) Close() error {
	it.r.mu.Lock()
	it.r.inFlight -= it.size
	it.r.mu.Unlock()
	return nil
}

// TestCopier_BytesInFlight: a copy asks for its chunks in several requests
// and never has more frame bytes asked for than the node's limit; every
// chunk arrives.
func TestCopier_BytesInFlight(t *testing.T) {
	src, dst := openStore(t), openStore(t)
	res, err := src.Ingest(context.Background(), bytes.NewReader(randomData(20, 24<<20)))
	if err != nil {
		t.Fatal(err)
	}
	var ids []chunkstore.ChunkID
	for _, c := range res.Manifest.Chunks {
		ids = append(ids, c.ID)
	}
	remote := &storeRemote{src: src}
	const limit = 1 << 20 // one 512 KiB group at a time (two do not fit), not eight
	c := &syncer.Copier{Store: dst, Fetcher: remote, Limit: syncer.NewLimit(limit)}
	if err := c.CopyChunks(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if ok, _ := dst.HasChunk(id); !ok {
			t.Fatalf("chunk %s not copied", id)
		}
	}
	if remote.requests < 40 {
		t.Fatalf("24 MiB copied in %d requests; want groups of about 512 KiB", remote.requests)
	}
	if remote.most > limit {
		t.Fatalf("%d bytes in flight; the limit is %d", remote.most, limit)
	}

	// Without a limit, several groups are asked for at once.
	dst2 := openStore(t)
	remote = &storeRemote{src: src}
	c = &syncer.Copier{Store: dst2, Fetcher: remote}
	if err := c.CopyChunks(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	if remote.most <= 1<<20+300<<10 {
		t.Fatalf("at most %d bytes in flight without a limit; want several groups at once", remote.most)
	}
}

// TestFetchManifestRemote: one answer brings the manifest and the frame
// sizes of the chunks its sender holds; a copy takes those from it at once
// and looks for the rest elsewhere; a peer without the manifest is passed
// over.
func TestFetchManifestRemote(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{}, "eu", "eu", "us")
	a, half, b := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	data := randomData(50, 2<<20)
	id := stage(t, a, data)
	m, err := a.Store.Manifest(id)
	if err != nil {
		t.Fatal(err)
	}
	f := fetcher(half)
	f.Peers = func() []peer.ID { return []peer.ID{b.Host.ID(), a.Host.ID()} } // b lacks it
	remote, err := f.FetchManifestRemote(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range m.Chunks {
		want, _, _ := a.Store.FrameSize(ch.ID)
		if got, ok := remote.FrameSize(ch.ID); !ok || got != want {
			t.Fatalf("chunk %s: size %d %v from the answer, %d on the sender", ch.ID, got, ok, want)
		}
	}
	if _, err := half.Store.Manifest(id); err != nil {
		t.Fatalf("the manifest was not stored: %v", err)
	}
	// half gets the first half of the chunks; b then copies the manifest
	// from half (nearest) and the chunks half lacks from a.
	if err := (&syncer.Copier{Store: half.Store, Fetcher: f}).CopyChunks(context.Background(), chunkIDs(m)[:len(m.Chunks)/2]); err != nil {
		t.Fatal(err)
	}
	fb := fetcher(b)
	fb.Peers = func() []peer.ID { return []peer.ID{half.Host.ID(), a.Host.ID()} }
	if copied, err := (&syncer.Copier{Store: b.Store, Fetcher: fb}).CopyManifest(context.Background(), id); err != nil || !copied || !complete(b, id) {
		t.Fatalf("copy: copied %v, %v", copied, err)
	}
	if _, err := fetcher(a).FetchManifestRemote(context.Background(), stage(t, a, randomData(51, 1<<10))); !errors.Is(err, p2p.ErrUnavailable) {
		t.Fatalf("a manifest no peer holds: %v, want ErrUnavailable", err)
	}
}

func chunkIDs(m chunkstore.Manifest) []chunkstore.ChunkID {
	out := make([]chunkstore.ChunkID, len(m.Chunks))
	for i, c := range m.Chunks {
		out[i] = c.ID
	}
	return out
}
