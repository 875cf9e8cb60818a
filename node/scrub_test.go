package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/eventually"
	"github.com/garret-cache/garret/internal/narinfo"
	"github.com/garret-cache/garret/replication/catalog"
)

// corruptOnDisk flips a byte in the middle of a chunk's frame in its
// segment file, as a failing disk would.
func corruptOnDisk(t *testing.T, n *Node, id chunkstore.ChunkID) {
	t.Helper()
	path, off, size, ok, err := n.Store().FrameLocation(id)
	if err != nil || !ok {
		t.Fatalf("chunk %s on %s: %v %v", id, n.URL(), ok, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	pos := off + int64(size)/2
	if _, err := f.ReadAt(b, pos); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, pos); err != nil {
		t.Fatal(err)
	}
	// The next read checks it, as it would some seconds later (a frame
	// streamed lately is sent unchecked for a while: chunkstore/sendfile.go).
	n.Store().ForgetChecks()
}

// narData is a NAR's worth of varied bytes: many distinct chunks.
func narData(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, 0, n+64)
	for len(b) < n {
		b = fmt.Appendf(b, "file %d line %d %x\n", r.IntN(500), r.IntN(90), r.Uint64())
	}
	return b[:n]
}

// getNAR fetches a public NAR and checks it is exactly want.
func getNAR(t *testing.T, n *Node, cache, hash string, want []byte) {
	t.Helper()
	resp, err := http.Get(n.URL() + cache + "/nar/" + hash + ".nar")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || !bytes.Equal(got, want) {
		t.Fatalf("GET the NAR: %d, %d of %d bytes, equal %v, %v", resp.StatusCode, len(got), len(want), bytes.Equal(got, want), err)
	}
}

// servedBytes is the whole served stream of a NAR n holds.
func servedBytes(t *testing.T, n *Node, id chunkstore.ManifestID) []byte {
	t.Helper()
	nar, err := n.Store().OpenNAR(id)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := nar.WriteRange(context.Background(), &b, 0, nar.Size); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// holdsIntact reports whether n stores the chunk with a frame that passes
// its full check.
func holdsIntact(n *Node, id chunkstore.ChunkID) bool {
	f, err := n.Store().Frame(id)
	if err != nil {
		return false
	}
	_, err = n.Store().VerifyFrame(id, f)
	return err == nil
}

// TestCluster_ScrubAndRepair: two nodes hold a NAR; a chunk damaged on disk
// on one of them is (a) repaired by the next read, which serves exactly
// the original bytes, and (b) found by an on-demand scrub, dropped and
// fetched again from the other node.
func TestCluster_ScrubAndRepair(t *testing.T) {
	a := startCluster(t, clusterConfig(t, "eu-1", "eu", nil), time.Minute)
	b := startCluster(t, clusterConfig(t, "us-1", "us", []string{a.cluster.GossipAddr()}), time.Minute)
	eventually.True(t, "two servers", func() bool { s, err := a.Catalog().Servers(); return err == nil && len(s) == 2 })
	key, _ := narinfo.GenerateKeypair("pub")
	eventually.True(t, "the cache", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := a.Catalog().CreateCache(ctx, catalog.Cache{Name: "pub", Keypair: key, IsPublic: true, StoreDir: "/nix/store"})
		return err == nil || errors.Is(err, catalog.ErrCacheExists)
	})
	data := narData(1, 900<<10)
	hash := "1123456789abcdfghijklmnpqrsvwxyz"
	res := pushObject(t, a, a, "pub", hash, data)
	chunks := res.Manifest.Chunks
	if len(chunks) < 4 {
		t.Fatalf("%d chunks: want several", len(chunks))
	}
	eventually.True(t, "the second node to hold every chunk", func() bool {
		for _, c := range chunks {
			if ok, _ := b.Store().HasChunk(c.ID); !ok {
				return false
			}
		}
		return true
	})
	want := servedBytes(t, b, res.Manifest.ID())
	if !bytes.Equal(servedBytes(t, a, res.Manifest.ID()), want) {
		t.Fatal("the nodes serve different frames; the test needs them equal")
	}

	step(t, "a read that meets a bad chunk serves correct bytes and repairs it", func(t *testing.T) {
		bad := chunks[1].ID
		corruptOnDisk(t, a, bad) // not read before the GET: a read would drop it, and the GET would read through
		getNAR(t, a, "pub", hash, want)
		dec, _ := zstd.NewReader(nil)
		defer dec.Close()
		if raw, err := dec.DecodeAll(want, nil); err != nil || !bytes.Equal(raw, data) {
			t.Fatal("the served NAR does not decode to what was pushed")
		}
		if !holdsIntact(a, bad) {
			t.Fatal("the chunk was not repaired")
		}
		if m := metricsText(t, a); !strings.Contains(m, "garret_chunkstore_read_repaired_chunks_total 1") {
			t.Fatalf("/metrics does not show the repair:\n%s", grepLines(m, "garret_chunkstore_"))
		}
	})

	step(t, "an on-demand scrub finds a bad chunk and repairs it from the peer", func(t *testing.T) {
		bad := chunks[3].ID
		corruptOnDisk(t, a, bad)
		st, body := adminPost(t, a, "/_api/v1/cluster/scrub", nil)
		var sr v1.ClusterScrubResponse
		if st != 200 || json.Unmarshal(body, &sr) != nil {
			t.Fatalf("scrub: %d %s", st, body)
		}
		if sr.Bad != 1 || sr.Repaired != 1 || sr.Unrepaired != 0 || len(sr.BadChunks) != 1 || sr.BadChunks[0] != bad.String() || sr.Chunks < int64(len(chunks)) {
			t.Fatalf("scrub: %+v, want chunk %s bad and repaired", sr, bad)
		}
		if !holdsIntact(a, bad) {
			t.Fatal("the chunk was not repaired")
		}
		st, body = adminPost(t, a, "/_api/v1/cluster/scrub", v1.ClusterScrubRequest{Rate: 64 << 20})
		if st != 200 || json.Unmarshal(body, &sr) != nil || sr.Bad != 0 {
			t.Fatalf("second scrub: %d %s", st, body)
		}
		getNAR(t, a, "pub", hash, want)
		m := metricsText(t, a)
		for _, line := range []string{"garret_chunkstore_scrub_runs_total 2", "garret_chunkstore_scrub_bad_chunks_total 1", "garret_repair_repaired_chunks_total 1"} {
			if !strings.Contains(m, line) {
				t.Fatalf("/metrics lacks %q:\n%s", line, grepLines(m, "scrub", "repair"))
			}
		}
	})
}

// TestNode_LoneScrubDropsBadChunks: a lone node's scrub drops a bad chunk
// (so it is never served) and reports it unrepaired; the NAR is then a 503,
// not bad bytes.
func TestNode_LoneScrubDropsBadChunks(t *testing.T) {
	n, err := start(t, testConfig(t, t.TempDir(), "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	key, _ := narinfo.GenerateKeypair("pub")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Catalog().CreateCache(ctx, catalog.Cache{Name: "pub", Keypair: key, IsPublic: true, StoreDir: "/nix/store"}); err != nil {
		t.Fatal(err)
	}
	hash := "2123456789abcdfghijklmnpqrsvwxyz"
	res := pushObject(t, n, n, "pub", hash, narData(2, 400<<10))
	bad := res.Manifest.Chunks[1].ID
	corruptOnDisk(t, n, bad)
	st, body := adminPost(t, n, "/_api/v1/cluster/scrub", nil)
	var sr v1.ClusterScrubResponse
	if st != 200 || json.Unmarshal(body, &sr) != nil || sr.Bad != 1 || sr.Unrepaired != 1 || sr.Repaired != 0 {
		t.Fatalf("scrub: %d %s", st, body)
	}
	if ok, _ := n.Store().HasChunk(bad); ok {
		t.Fatal("the bad chunk is still stored")
	}
	resp, err := http.Get(n.URL() + "pub/nar/" + hash + ".nar")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a NAR missing a chunk: %d, want 503", resp.StatusCode)
	}
}

// metricsText is n's /metrics page.
func metricsText(t *testing.T, n *Node) string {
	t.Helper()
	resp, err := http.Get(n.URL() + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// grepLines keeps the lines of text that contain any of words.
func grepLines(text string, words ...string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
