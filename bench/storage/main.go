// Command storage compares three layouts for chunk frames under an 8-way
// concurrent write: pebble v2 values, pebble v2 with value separation (blob
// files), and append-only segment files indexed by pebble. Each layout runs
// in a subprocess so its peak RSS is its own. The chosen layout and the
// numbers are recorded in chunkstore/DESIGN.md.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
)

const (
	writers  = 8
	perWrite = 32 << 20 // raw bytes per writer
	chunk    = 64 << 10
)

func main() {
	layout := flag.String("layout", "", "run one layout (internal)")
	flag.Parse()
	if *layout != "" {
		if err := runLayout(*layout); err != nil {
			log.Fatal(err)
		}
		return
	}
	fmt.Printf("\n## Chunk storage layouts (bench/storage)\n\n8 writers each store %d MiB of 64 KiB chunks as zstd frames (batches of 4 MiB, NoSync, final Sync), then\nrandom single-frame reads. Peak RSS includes the test's own frames held in memory (~%d MiB raw before compression).\n\n", perWrite>>20, writers*perWrite>>20)
	fmt.Printf("| layout | write MB/s (frames) | read MB/s | disk MiB | peak RSS MiB |\n|---|---:|---:|---:|---:|\n")
	for _, l := range []string{"pebble", "pebble-blob", "segments"} {
		out, err := exec.Command(os.Args[0], "-layout", l).CombinedOutput()
		if err != nil {
			log.Fatalf("%s: %v\n%s", l, err, out)
		}
		fmt.Print(string(out))
	}
}

// frames makes one writer's compressed chunks from semi-compressible data.
func frames(seed uint64) (ids [][32]byte, fs [][]byte) {
	r := rand.New(rand.NewPCG(seed, 7))
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	buf := make([]byte, 0, chunk)
	for range perWrite / chunk {
		buf = buf[:0]
		for len(buf) < chunk {
			if r.IntN(3) == 0 {
				for range 32 {
					buf = append(buf, byte(r.Uint32()))
				}
			} else {
				buf = fmt.Appendf(buf, "symbol_%d offset=%d\n", r.IntN(4000), r.IntN(100))
			}
		}
		buf = buf[:chunk]
		ids = append(ids, blake3.Sum256(buf))
		fs = append(fs, enc.EncodeAll(buf, nil))
	}
	return
}

type store interface {
	write(ids [][32]byte, fs [][]byte) error
	read(id [32]byte) (int, error)
	close() error
}

func runLayout(layout string) error {
	dir, err := os.MkdirTemp("", "garret-storage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	allIDs := make([][][32]byte, writers)
	allFrames := make([][][]byte, writers)
	var total int64
	for w := range writers {
		allIDs[w], allFrames[w] = frames(uint64(w))
		for _, f := range allFrames[w] {
			total += int64(len(f))
		}
	}
	s, err := open(layout, dir)
	if err != nil {
		return err
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.write(allIDs[w], allFrames[w]); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	writeSecs := time.Since(start).Seconds()
	start = time.Now()
	var read int64
	r := rand.New(rand.NewPCG(1, 2))
	for range writers * (perWrite / chunk) {
		w := r.IntN(writers)
		n, err := s.read(allIDs[w][r.IntN(len(allIDs[w]))])
		if err != nil {
			return err
		}
		read += int64(n)
	}
	readSecs := time.Since(start).Seconds()
	if err := s.close(); err != nil {
		return err
	}
	fmt.Printf("| %s | %.0f | %.0f | %.1f | %.0f |\n", layout, float64(total)/1e6/writeSecs, float64(read)/1e6/readSecs,
		float64(du(dir))/(1<<20), float64(vmHWM())/1024)
	return nil
}

func open(layout, dir string) (store, error) {
	opts := &pebble.Options{FormatMajorVersion: pebble.FormatNewest, MemTableSize: 16 << 20, Logger: quiet{}}
	switch layout {
	case "pebble-blob":
		opts.FormatMajorVersion = pebble.FormatValueSeparation
		opts.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
			return pebble.ValueSeparationPolicy{Enabled: true, MinimumSize: 1024, MaxBlobReferenceDepth: 10, RewriteMinimumAge: 5 * time.Minute, TargetGarbageRatio: 0.2}
		}
		fallthrough
	case "pebble":
		db, err := pebble.Open(filepath.Join(dir, "db"), opts)
		return &pebbleStore{db: db}, err
	case "segments":
		db, err := pebble.Open(filepath.Join(dir, "index"), opts)
		return &segStore{db: db, dir: dir}, err
	}
	return nil, fmt.Errorf("unknown layout %q", layout)
}

type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(f string, a ...any) {
	log.Fatalf(f, a...)
}

type pebbleStore struct{ db *pebble.DB }

func (p *pebbleStore) write(ids [][32]byte, fs [][]byte) error {
	b := p.db.NewBatch()
	for i := range ids {
		if err := b.Set(ids[i][:], fs[i], nil); err != nil {
			return err
		}
		if b.Len() > 4<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b = p.db.NewBatch()
		}
	}
	return b.Commit(pebble.Sync)
}

func (p *pebbleStore) read(id [32]byte) (int, error) {
	v, c, err := p.db.Get(id[:])
	if err != nil {
		return 0, err
	}
	n := len(v)
	return n, c.Close()
}

func (p *pebbleStore) close() error { return p.db.Close() }

// segStore appends frames to one file per writer and indexes them in pebble.
type segStore struct {
	db  *pebble.DB
	dir string
	mu  sync.Mutex
	seg int
}

func (s *segStore) write(ids [][32]byte, fs [][]byte) error {
	s.mu.Lock()
	s.seg++
	seg := s.seg
	s.mu.Unlock()
	f, err := os.Create(filepath.Join(s.dir, "seg-"+strconv.Itoa(seg)))
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	b := s.db.NewBatch()
	var off int64
	for i := range ids {
		if _, err := w.Write(fs[i]); err != nil {
			return err
		}
		v := binary.LittleEndian.AppendUint32(nil, uint32(seg))
		v = binary.LittleEndian.AppendUint64(v, uint64(off))
		v = binary.LittleEndian.AppendUint32(v, uint32(len(fs[i])))
		off += int64(len(fs[i]))
		if err := b.Set(ids[i][:], v, nil); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

func (s *segStore) read(id [32]byte) (int, error) {
	v, c, err := s.db.Get(id[:])
	if err != nil {
		return 0, err
	}
	seg, off, n := binary.LittleEndian.Uint32(v), int64(binary.LittleEndian.Uint64(v[4:])), binary.LittleEndian.Uint32(v[12:])
	_ = c.Close()
	f, err := os.Open(filepath.Join(s.dir, "seg-"+strconv.Itoa(int(seg))))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, n)
	k, err := f.ReadAt(buf, off)
	return k, err
}

func (s *segStore) close() error { return s.db.Close() }

func du(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func vmHWM() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}
