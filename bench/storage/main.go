// Command storage chooses chunkstore's on-disk layout with numbers.
//
// It pushes W deterministic, semi-compressible NARs (default 8 × 64 MiB)
// concurrently through the real ingest pipeline — FastCDC (fastcdc-v1.0.0,
// 16/64/256 KiB), BLAKE3 chunk ids, one zstd frame per chunk at SpeedFastest —
// into each candidate layout, then reads every NAR back as served bytes
// (frames in manifest order, CRC-32C checked) with W concurrent readers:
//
//   - pebble:      pebble v2, frames as plain values
//   - pebble-blob: pebble v2 with value separation (blob files)
//   - segments:    append-only segment files, pebble index (id → segment, offset)
//   - chunkstore:  the chunkstore package itself, as shipped (Ingest, OpenNAR,
//     WriteRange), to check that the chosen layout keeps its numbers once
//     the whole store (metadata, dedup, bounded pipeline) is around it
//
// Each layout runs in its own subprocess so that its peak RSS (VmHWM) is its
// own; all run under the same 96 MiB Go soft memory limit that garretd sets.
// The database is closed and reopened between the phases, so reads come
// from the files (warm in the page cache), as on a serving node.
//
// Usage (about a minute on 2 cores; prints a Markdown section):
//
//	CGO_ENABLED=0 go run ./bench/storage [-writers 8] [-size 64] [-dir /tmp]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"time"
)

// result is what one layout's subprocess reports, as one JSON line.
type result struct {
	Layout        string
	RawBytes      int64
	FrameBytes    int64
	IngestSecs    float64
	ReadBytes     int64
	ReadSecs      float64
	DiskIngest    int64 // bytes under the directory right after the pushes
	DiskClosed    int64 // after Close (WAL recycled, flushes done)
	Written       int64 // bytes the process wrote (wchar): WAL + flushes + compactions
	RSSIngest     int64 // VmHWM during the pushes, bytes
	RSSRead       int64 // VmHWM during the reads (reset before them)
	HeapInuseRead uint64
}

func main() {
	one := flag.String("layout", "", "run one layout in this process and print JSON (used by the parent)")
	writers := flag.Int("writers", 8, "concurrent pushes (and readers)")
	sizeMiB := flag.Int64("size", 64, "MiB of raw NAR per push")
	dir := flag.String("dir", os.TempDir(), "parent directory for the stores")
	flag.Parse()
	debug.SetMemoryLimit(96 << 20) // garretd's default soft limit

	if *one != "" {
		res, err := runLayout(*one, *dir, *writers, *sizeMiB<<20)
		if err != nil {
			log.Fatalf("%s: %v", *one, err)
		}
		if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
			log.Fatal(err)
		}
		return
	}

	start := time.Now()
	fmt.Printf("\n## Chunk storage layouts (bench/storage)\n\n")
	fmt.Printf("%d concurrent pushes of %d MiB each (deterministic, ~2.8× compressible), FastCDC 16/64/256 KiB, BLAKE3,\n"+
		"zstd SpeedFastest per chunk; batches committed every 2 MiB (NoSync) and synced at the end of each push.\n"+
		"Then %d concurrent readers serve every NAR (frames in order, CRC-32C checked) after a close and reopen.\n"+
		"Each layout in its own process, 96 MiB Go soft memory limit; GOMAXPROCS=%d, %s.\n\n",
		*writers, *sizeMiB, *writers, runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Printf("| layout | ingest MB/s (raw) | read MB/s (served) | disk after ingest MiB | disk after close MiB | written MiB | peak RSS ingest MiB | peak RSS read MiB |\n")
	fmt.Printf("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	var first result
	for _, l := range []string{"pebble", "pebble-blob", "segments", "chunkstore"} {
		cmd := exec.Command(os.Args[0], "-layout", l, "-writers", fmt.Sprint(*writers),
			"-size", fmt.Sprint(*sizeMiB), "-dir", *dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			log.Fatalf("%s: %v", l, err)
		}
		var r result
		if err := json.Unmarshal(out, &r); err != nil {
			log.Fatalf("%s: %v in %q", l, err, out)
		}
		fmt.Printf("| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", r.Layout,
			float64(r.RawBytes)/1e6/r.IngestSecs, float64(r.ReadBytes)/1e6/r.ReadSecs,
			mib(r.DiskIngest), mib(r.DiskClosed), mib(r.Written), mib(r.RSSIngest), mib(r.RSSRead))
		if first.Layout == "" {
			first = r
		}
	}
	fmt.Printf("\n%.0f MiB raw in, %.0f MiB of frames (ratio %.2f). Total run time %.0f s.\n",
		mib(first.RawBytes), mib(first.FrameBytes), float64(first.RawBytes)/float64(first.FrameBytes), time.Since(start).Seconds())
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// vocabulary is a fixed set of pseudo-words: text built from it compresses
// like source code or ELF string tables do, not like English.
var vocabulary = func() [][]byte {
	r := rand.New(rand.NewPCG(42, 42))
	words := make([][]byte, 200)
	for i := range words {
		w := make([]byte, 2+r.IntN(10))
		for k := range w {
			w[k] = 'a' + byte(r.IntN(26))
		}
		words[i] = w
	}
	return words
}()

// randomPercent is the share of pieces that are incompressible random bytes.
// With 8% random pieces, independent zstd frames of FastCDC chunks compress
// about 2.8× at SpeedFastest, close to real store paths (deps.md §4: 2.55–2.76).
const randomPercent = 8

// narGen is a deterministic, semi-compressible stream standing in for a NAR:
// pieces of 0.5–4 KiB that are either random bytes or a slice of a 1 MiB
// pool of skewed pseudo-text. Different seeds give streams that share no
// chunks, so the benchmark measures storage, not deduplication. It generates
// at several GB/s, far faster than the pipeline it feeds.
type narGen struct {
	r     *rand.Rand
	left  int64
	pool  []byte
	piece []byte
	rnd   []byte
}

func newNarGen(seed uint64, size int64) *narGen {
	r := rand.New(rand.NewPCG(seed, 99))
	pool := make([]byte, 0, 1<<20+16)
	for len(pool) < 1<<20 {
		pool = append(pool, vocabulary[r.IntN(len(vocabulary))&r.IntN(len(vocabulary))]...)
		pool = append(pool, " \n=,/"[r.IntN(5)])
	}
	return &narGen{r: r, left: size, pool: pool[:1<<20], rnd: make([]byte, 4096)}
}

// Read fills p with the next bytes of the stream.
func (g *narGen) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if len(g.piece) == 0 {
		n := 512 + g.r.IntN(3584)
		if g.r.IntN(100) < randomPercent {
			for i := 0; i+8 <= n; i += 8 {
				v := g.r.Uint64()
				for k := range 8 {
					g.rnd[i+k] = byte(v >> (8 * k))
				}
			}
			g.piece = g.rnd[:n&^7]
		} else {
			off := g.r.IntN(len(g.pool) - n)
			g.piece = g.pool[off : off+n]
		}
	}
	n := copy(p, g.piece)
	if int64(n) > g.left {
		n = int(g.left)
	}
	g.piece = g.piece[n:]
	g.left -= int64(n)
	return n, nil
}
