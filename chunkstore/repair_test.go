package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// refetchFrom is a Sources.Refetch that finds chunks in another store.
func refetchFrom(src *Store, asked *[]ChunkID) func(context.Context, []ChunkID) (Remote, error) {
	return func(_ context.Context, ids []ChunkID) (Remote, error) {
		*asked = append(*asked, ids...)
		for _, id := range ids {
			if ok, _ := src.HasChunk(id); !ok {
				return nil, errors.New("no peer has it")
			}
		}
		return storeRemote{src: src}, nil
	}
}

// copyNAR gives dst the manifest and frames of a NAR src holds, as the
// syncer does.
func copyNAR(t *testing.T, src, dst *Store, m Manifest) {
	t.Helper()
	if _, err := dst.PutManifest(m); err != nil {
		t.Fatal(err)
	}
	for _, c := range m.Chunks {
		f, err := src.Frame(c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := dst.PutFrame(c.ID, f); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWriteRange_RepairsBadFrame: a NAR read that meets a bad frame serves
// the peer's frame in its place, byte for byte what was promised, and the
// chunk is stored again; without Refetch, or when no peer has the chunk,
// the read fails as before.
func TestWriteRange_RepairsBadFrame(t *testing.T) {
	data := testData(80, 900<<10)
	src := newTestStore(t)
	res, id := mustIngest(t, src, data)
	want := served(t, src, id)
	dst := newTestStore(t)
	copyNAR(t, src, dst, res.Manifest)
	bad := res.Manifest.Chunks[2].ID

	// Without Refetch: ErrCorrupt, the frame dropped.
	corruptFrame(t, dst, bad)
	nar, err := dst.OpenNAR(id)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := nar.WriteRange(context.Background(), &got, 0, nar.Size); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("without Refetch: %v", err)
	}

	// The chunk is stored again (a re-push), then damaged again; now the
	// NAR is opened with Refetch.
	f, _ := src.Frame(bad)
	if err := dst.PutFrame(bad, f); err != nil {
		t.Fatal(err)
	}
	var asked []ChunkID
	nar, err = dst.OpenNARWith(id, Sources{Refetch: refetchFrom(src, &asked)})
	if err != nil {
		t.Fatal(err)
	}
	corruptFrame(t, dst, bad)
	got.Reset()
	if n, err := nar.WriteRange(context.Background(), &got, 0, nar.Size); err != nil || n != nar.Size {
		t.Fatalf("with Refetch: %d of %d bytes, %v", n, nar.Size, err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatal("served bytes differ")
	}
	if len(asked) != 1 || asked[0] != bad {
		t.Fatalf("asked peers for %v, want only %s", asked, bad)
	}
	if testutil.ToFloat64(dst.metrics.readRepairs) != 1 {
		t.Error("read_repaired_chunks_total did not count the repair")
	}
	// Repaired: the scrub finds nothing bad and the NAR serves locally.
	if st, err := dst.Scrub(context.Background(), fastScrub); err != nil || st.Bad != 0 || st.Chunks != int64(len(res.Manifest.Chunks)) {
		t.Fatalf("scrub after the repair: %+v %v", st, err)
	}
	if !bytes.Equal(served(t, dst, id), want) {
		t.Fatal("the repaired NAR differs")
	}

	// A chunk dropped after the NAR was opened (by a scrub) is repaired too.
	nar, err = dst.OpenNARWith(id, Sources{Refetch: refetchFrom(src, &asked)})
	if err != nil {
		t.Fatal(err)
	}
	corruptFrame(t, dst, bad)
	if st, err := dst.Scrub(context.Background(), fastScrub); err != nil || len(st.Dropped) != 1 {
		t.Fatalf("scrub: %+v %v", st, err)
	}
	got.Reset()
	if _, err := nar.WriteRange(context.Background(), &got, 0, nar.Size); err != nil || !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("after a scrub dropped the chunk: %v", err)
	}

	// No peer has it: the read fails, nothing short is passed off as whole.
	nar, err = dst.OpenNARWith(id, Sources{Refetch: refetchFrom(newTestStore(t), &asked)})
	if err != nil {
		t.Fatal(err)
	}
	corruptFrame(t, dst, bad)
	got.Reset()
	if _, err := nar.WriteRange(context.Background(), &got, 0, nar.Size); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("no peer has it: %v", err)
	}
}

// TestWriteRange_RepairWithAnotherFrameSize: a peer's frame of another size
// (it compressed the chunk at another level) fills the promised length
// with a skippable frame when it is smaller, and fails the read (keeping
// the frame for the next read) when it is larger.
func TestWriteRange_RepairWithAnotherFrameSize(t *testing.T) {
	data := testData(81, 300<<10)
	fastCfg, bestCfg := testConfig(t.TempDir()), testConfig(t.TempDir())
	bestCfg.Level = zstd.SpeedBestCompression
	fast, best := openTest(t, fastCfg), openTest(t, bestCfg)
	res, id := mustIngest(t, fast, data)
	if res2, _ := mustIngest(t, best, data); res2.Manifest.ID() != id {
		t.Fatal("the two stores cut the NAR differently")
	}
	c := res.Manifest.Chunks[0].ID
	fs, _, _ := fast.FrameSize(c)
	bs, _, _ := best.FrameSize(c)
	if int(bs)+skippableHeader > int(fs) {
		t.Fatalf("frames of %d and %d bytes: the test needs the best level to save at least 8 bytes", fs, bs)
	}

	// Smaller frame from the peer: padded, decodes to the NAR.
	var asked []ChunkID
	nar, err := fast.OpenNARWith(id, Sources{Refetch: refetchFrom(best, &asked)})
	if err != nil {
		t.Fatal(err)
	}
	corruptFrame(t, fast, c)
	var got bytes.Buffer
	if n, err := nar.WriteRange(context.Background(), &got, 0, nar.Size); err != nil || n != nar.Size {
		t.Fatalf("%d of %d bytes, %v", n, nar.Size, err)
	}
	if !bytes.Equal(decode(t, got.Bytes()), data) {
		t.Fatal("the padded stream does not decode to the NAR")
	}

	// Larger frame from the peer: the read fails, the frame is kept. (fast
	// now holds best's frame: the peer is a store of its own.)
	peer := newTestStore(t)
	mustIngest(t, peer, data)
	nar, err = best.OpenNARWith(id, Sources{Refetch: refetchFrom(peer, &asked)})
	if err != nil {
		t.Fatal(err)
	}
	corruptFrame(t, best, c)
	got.Reset()
	if _, err := nar.WriteRange(context.Background(), &got, 0, nar.Size); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a larger frame: %v", err)
	}
	if !bytes.Equal(decode(t, served(t, best, id)), data) {
		t.Fatal("the next read does not serve the kept frame")
	}
}
