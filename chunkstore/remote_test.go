package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// storeRemote serves frames from another store, optionally damaging them.
type storeRemote struct {
	src     *Store
	lie     int  // added to every announced size
	damage  bool // flip a byte in every frame
	fetched *[]ChunkID
}

func (r storeRemote) FrameSize(id ChunkID) (uint32, bool) {
	f, err := r.src.Frame(id)
	if err != nil {
		return 0, false
	}
	return uint32(len(f) + r.lie), true
}

func (r storeRemote) Frames(_ context.Context, ids []ChunkID) (FrameIter, error) {
	if r.fetched != nil {
		*r.fetched = append(*r.fetched, ids...)
	}
	return &sliceIter{r: r, ids: ids}, nil
}

type sliceIter struct {
	r   storeRemote
	ids []ChunkID
}

func (it *sliceIter) Next() ([]byte, error) {
	if len(it.ids) == 0 {
		return nil, errors.New("no more frames")
	}
	f, err := it.r.src.Frame(it.ids[0])
	it.ids = it.ids[1:]
	if err == nil && it.r.damage {
		f = append([]byte(nil), f...)
		f[len(f)/2] ^= 0xff
	}
	return f, err
}

func (it *sliceIter) Close() error { return nil }

// TestOpenNARFrom_StreamsMissingChunksAndKeepsThem: a NAR with one chunk
// here and the rest on a "peer" is served whole, byte for byte what the peer
// serves, with the size known up front; afterwards every chunk is local.
func TestOpenNARFrom_StreamsMissingChunksAndKeepsThem(t *testing.T) {
	data := testData(11, 700<<10)
	src := newTestStore(t)
	res, id := mustIngest(t, src, data)
	if len(res.Manifest.Chunks) < 4 {
		t.Fatalf("want several chunks, got %d", len(res.Manifest.Chunks))
	}
	want := served(t, src, id)

	dst := newTestStore(t)
	if _, err := dst.PutManifest(res.Manifest); err != nil {
		t.Fatal(err)
	}
	local := res.Manifest.Chunks[2].ID
	f, _ := src.Frame(local)
	if err := dst.PutFrame(local, f); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.OpenNAR(id); !errors.Is(err, ErrMissingChunks) {
		t.Fatalf("OpenNAR without the remote: %v", err)
	}
	var fetched []ChunkID
	nar, err := dst.OpenNARFrom(id, storeRemote{src: src, fetched: &fetched})
	if err != nil {
		t.Fatal(err)
	}
	if nar.Size != int64(len(want)) {
		t.Fatalf("size %d, want %d", nar.Size, len(want))
	}
	var got bytes.Buffer
	if _, err := nar.WriteRange(context.Background(), &got, 0, nar.Size); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatal("served bytes differ from the peer's")
	}
	if len(fetched) != len(res.Manifest.Chunks)-1 {
		t.Errorf("fetched %d chunks, want %d (one was local)", len(fetched), len(res.Manifest.Chunks)-1)
	}
	for _, c := range fetched {
		if c == local {
			t.Error("fetched a chunk that was local")
		}
	}
	// Kept: now it opens without the remote.
	if !bytes.Equal(decode(t, served(t, dst, id)), data) {
		t.Fatal("NAR after read-through differs")
	}
}

// TestOpenNARFrom_Range: a range in the middle fetches only the chunks it
// covers.
func TestOpenNARFrom_Range(t *testing.T) {
	data := testData(12, 900<<10)
	src := newTestStore(t)
	res, id := mustIngest(t, src, data)
	want := served(t, src, id)
	dst := newTestStore(t)
	if _, err := dst.PutManifest(res.Manifest); err != nil {
		t.Fatal(err)
	}
	var fetched []ChunkID
	nar, err := dst.OpenNARFrom(id, storeRemote{src: src, fetched: &fetched})
	if err != nil {
		t.Fatal(err)
	}
	off, length := nar.Size/3, nar.Size/4
	var got bytes.Buffer
	if _, err := nar.WriteRange(context.Background(), &got, off, length); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want[off:off+length]) {
		t.Fatal("range differs")
	}
	if len(fetched) == 0 || len(fetched) >= len(res.Manifest.Chunks) {
		t.Errorf("a quarter of the NAR fetched %d of %d chunks", len(fetched), len(res.Manifest.Chunks))
	}
}

// TestOpenNARFrom_BadPeer: a damaged frame or one of another size than
// announced fails the stream before its bytes are written, and is not kept.
func TestOpenNARFrom_BadPeer(t *testing.T) {
	data := testData(13, 300<<10)
	src := newTestStore(t)
	res, id := mustIngest(t, src, data)
	for _, remote := range []storeRemote{{src: src, damage: true}, {src: src, lie: 1}} {
		dst := newTestStore(t)
		if _, err := dst.PutManifest(res.Manifest); err != nil {
			t.Fatal(err)
		}
		nar, err := dst.OpenNARFrom(id, remote)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		n, err := nar.WriteRange(context.Background(), &got, 0, nar.Size)
		if !errors.Is(err, ErrCorrupt) || n != 0 || got.Len() != 0 {
			t.Errorf("damage=%v lie=%d: wrote %d bytes, err %v", remote.damage, remote.lie, n, err)
		}
		if ok, _ := dst.HasChunk(res.Manifest.Chunks[0].ID); ok {
			t.Error("a bad frame was kept")
		}
	}
	// A chunk the remote does not know is missing at open time.
	dst := newTestStore(t)
	if _, err := dst.PutManifest(res.Manifest); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.OpenNARFrom(id, storeRemote{src: newTestStore(t)}); !errors.Is(err, ErrMissingChunks) {
		t.Errorf("unknown to the remote: %v", err)
	}
}
