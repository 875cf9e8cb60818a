package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc" // registers fastcdc-v1.0.0
	"github.com/garret-cache/garret/chunkstore"
	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
)

// nar is what a push leaves behind for the read phase.
type nar struct {
	ids      [][32]byte            // layouts: frames in order
	manifest chunkstore.ManifestID // chunkstore
}

// subject is a layout (or the whole chunkstore) under test.
type subject interface {
	push(seed uint64, size int64) (n nar, frameBytes int64, err error)
	reopen() error
	serve(n nar, w io.Writer) (int64, error)
	close() error
}

func runLayout(name, parent string, writers int, size int64) (result, error) {
	res := result{Layout: name, RawBytes: int64(writers) * size}
	dir, err := os.MkdirTemp(parent, "garret-storage-"+name+"-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	open := func() (subject, error) {
		if name == "chunkstore" {
			cfg := chunkstore.DefaultConfig()
			cfg.Dir = filepath.Join(dir, "chunks")
			s, err := chunkstore.Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			return &storeSubject{s: s, cfg: cfg}, err
		}
		l, err := openLayout(name, dir)
		return &layoutSubject{l: l, name: name, dir: dir}, err
	}
	s, err := open()
	if err != nil {
		return res, err
	}

	nars := make([]nar, writers)
	var frameBytes [64]int64
	start := time.Now()
	err = parallel(writers, func(i int) error {
		var err error
		nars[i], frameBytes[i%64], err = s.push(uint64(i+1), size)
		return err
	})
	res.IngestSecs = time.Since(start).Seconds()
	if err != nil {
		return res, err
	}
	for _, n := range frameBytes {
		res.FrameBytes += n
	}
	res.RSSIngest, res.DiskIngest = vmHWM(), du(dir)
	if err := s.reopen(); err != nil {
		return res, err
	}
	res.DiskClosed = du(dir)

	resetHWM()
	var served [64]int64
	start = time.Now()
	err = parallel(writers, func(i int) error {
		n, err := s.serve(nars[i], io.Discard)
		served[i%64] += n
		return err
	})
	res.ReadSecs = time.Since(start).Seconds()
	if err != nil {
		return res, err
	}
	for _, n := range served {
		res.ReadBytes += n
	}
	res.RSSRead = vmHWM()
	if err := s.close(); err != nil {
		return res, err
	}
	res.Written = procIO("wchar")
	return res, nil
}

func parallel(n int, fn func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// layoutSubject runs chunkstore's pipeline inline in each pushing goroutine
// (8 goroutines on GOMAXPROCS cores keep the CPUs as busy as the store's
// worker pool does) and hands the frames to the layout.
type layoutSubject struct {
	l    layout
	name string
	dir  string
}

func (s *layoutSubject) push(seed uint64, size int64) (nar, int64, error) {
	var n nar
	ch, err := chunkers.NewChunker("fastcdc-v1.0.0", newNarGen(seed, size),
		&chunkers.ChunkerOpts{MinSize: 16 << 10, NormalSize: 64 << 10, MaxSize: 256 << 10})
	if err != nil {
		return n, 0, err
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithLowerEncoderMem(true))
	if err != nil {
		return n, 0, err
	}
	defer enc.Close()
	w, err := s.l.newWriter()
	if err != nil {
		return n, 0, err
	}
	var frame []byte
	var stored int64
	for {
		data, err := ch.Next()
		if len(data) > 0 {
			id := blake3.Sum256(data)
			frame = enc.EncodeAll(data, frame[:0])
			stored += int64(len(frame))
			n.ids = append(n.ids, id)
			if perr := w.put(id, len(data), frame); perr != nil {
				return n, 0, perr
			}
		}
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return n, 0, err
		}
	}
	return n, stored, w.finish()
}

func (s *layoutSubject) reopen() error {
	if err := s.l.close(); err != nil {
		return err
	}
	var err error
	s.l, err = openLayout(s.name, s.dir)
	return err
}

func (s *layoutSubject) serve(n nar, w io.Writer) (int64, error) {
	scratch := make([]byte, 512<<10)
	var total int64
	for _, id := range n.ids {
		k, err := s.l.read(id, w, scratch)
		total += int64(k)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (s *layoutSubject) close() error { return s.l.close() }

// storeSubject is the chunkstore package as shipped.
type storeSubject struct {
	s   *chunkstore.Store
	cfg chunkstore.Config
}

func (s *storeSubject) push(seed uint64, size int64) (nar, int64, error) {
	res, err := s.s.Ingest(context.Background(), newNarGen(seed, size))
	if err != nil {
		return nar{}, 0, err
	}
	id, err := s.s.PutManifest(res.Manifest)
	return nar{manifest: id}, res.StoredSize, err
}

func (s *storeSubject) reopen() error {
	if err := s.s.Close(); err != nil {
		return err
	}
	var err error
	s.s, err = chunkstore.Open(s.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return err
}

func (s *storeSubject) serve(n nar, w io.Writer) (int64, error) {
	r, err := s.s.OpenNAR(n.manifest)
	if err != nil {
		return 0, err
	}
	return r.WriteRange(context.Background(), w, 0, r.Size)
}

func (s *storeSubject) close() error { return s.s.Close() }

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

// vmHWM is the process's peak resident set size in bytes.
func vmHWM() int64 { return procField("/proc/self/status", "VmHWM:") * 1024 }

// resetHWM restarts peak-RSS accounting (Linux clear_refs 5).
func resetHWM() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func procIO(field string) int64 { return procField("/proc/self/io", field+":") }

func procField(file, prefix string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	panic(fmt.Sprintf("no %s in %s", prefix, file))
}
