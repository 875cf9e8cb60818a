package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// batchCommitBytes matches chunkstore: a batch is committed (NoSync) every
// 2 MiB and once more, synced, at the end of each push.
const batchCommitBytes = 2 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// layout is one way of storing frames. Every layout also writes chunkstore's
// small metadata key per chunk, because the real store needs it anyway.
type layout interface {
	newWriter() (frameWriter, error)
	// read writes the frame of id to w after checking its CRC-32C, using
	// scratch if it needs a buffer.
	read(id [32]byte, w io.Writer, scratch []byte) (int, error)
	close() error
}

// frameWriter is one push's writer: put frames, then finish durably.
type frameWriter interface {
	put(id [32]byte, raw int, frame []byte) error
	finish() error
}

// pebbleOptions mirrors chunkstore's options; blob switches on value
// separation (deps.md §1).
func pebbleOptions(blob bool) *pebble.Options {
	opts := &pebble.Options{Cache: pebble.NewCache(64 << 20), MemTableSize: 8 << 20,
		FormatMajorVersion: pebble.FormatNewest, Logger: quietLogger{}}
	if blob {
		opts.FormatMajorVersion = pebble.FormatValueSeparation
		opts.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
			return pebble.ValueSeparationPolicy{Enabled: true, MinimumSize: 1024, MaxBlobReferenceDepth: 10,
				RewriteMinimumAge: 5 * time.Minute, TargetGarbageRatio: 0.2}
		}
	}
	return opts
}

func openLayout(name, dir string) (layout, error) {
	switch name {
	case "pebble", "pebble-blob":
		opts := pebbleOptions(name == "pebble-blob")
		defer opts.Cache.Unref()
		db, err := pebble.Open(filepath.Join(dir, "db"), opts)
		return &pebbleLayout{db: db}, err
	case "segments":
		opts := pebbleOptions(false)
		defer opts.Cache.Unref()
		db, err := pebble.Open(filepath.Join(dir, "index"), opts)
		return &segmentLayout{db: db, dir: dir, files: map[uint32]*os.File{}}, err
	}
	return nil, fmt.Errorf("unknown layout %q", name)
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)           {}
func (quietLogger) Errorf(string, ...any)          {}
func (quietLogger) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

func metaKey(id [32]byte) []byte  { return append([]byte{'m'}, id[:]...) }
func frameKey(id [32]byte) []byte { return append([]byte{'c'}, id[:]...) }

// meta is chunkstore's 20-byte record (raw size, frame size, CRC, touched),
// followed for segments by the location (segment, offset).
func meta(raw int, frame []byte, loc ...uint64) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(raw))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(frame)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(frame, castagnoli))
	b = binary.LittleEndian.AppendUint64(b, uint64(time.Now().UnixNano()))
	for _, v := range loc {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

var errCorrupt = errors.New("bench: frame fails its CRC")

// pebbleLayout stores frames as values: plain, or separated into blob files.
type pebbleLayout struct{ db *pebble.DB }

type pebbleWriter struct {
	db    *pebble.DB
	batch *pebble.Batch
}

func (p *pebbleLayout) newWriter() (frameWriter, error) {
	return &pebbleWriter{db: p.db, batch: p.db.NewBatch()}, nil
}

func (w *pebbleWriter) put(id [32]byte, raw int, frame []byte) error {
	if err := w.batch.Set(frameKey(id), frame, nil); err != nil {
		return err
	}
	if err := w.batch.Set(metaKey(id), meta(raw, frame), nil); err != nil {
		return err
	}
	if w.batch.Len() < batchCommitBytes {
		return nil
	}
	if err := w.batch.Commit(pebble.NoSync); err != nil {
		return err
	}
	w.batch.Reset()
	return nil
}

func (w *pebbleWriter) finish() error {
	defer w.batch.Close()
	return w.batch.Commit(pebble.Sync)
}

func (p *pebbleLayout) read(id [32]byte, w io.Writer, _ []byte) (int, error) {
	m, closer, err := p.db.Get(metaKey(id))
	if err != nil {
		return 0, err
	}
	crc := binary.LittleEndian.Uint32(m[8:])
	_ = closer.Close()
	v, closer, err := p.db.Get(frameKey(id))
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if crc32.Checksum(v, castagnoli) != crc {
		return 0, errCorrupt
	}
	return w.Write(v)
}

func (p *pebbleLayout) close() error { return p.db.Close() }

// segmentLayout appends frames to segment files (one per push here) and
// indexes them in pebble: meta key → (…, segment, offset).
type segmentLayout struct {
	db    *pebble.DB
	dir   string
	mu    sync.Mutex
	next  uint32
	files map[uint32]*os.File // open for reading
}

type segmentWriter struct {
	l     *segmentLayout
	seg   uint32
	f     *os.File
	off   int64
	buf   []byte // frames not yet written to f
	batch *pebble.Batch
}

func (l *segmentLayout) newWriter() (frameWriter, error) {
	l.mu.Lock()
	l.next++
	seg := l.next
	l.mu.Unlock()
	f, err := os.OpenFile(l.segPath(seg), os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.files[seg] = f
	l.mu.Unlock()
	return &segmentWriter{l: l, seg: seg, f: f, batch: l.db.NewBatch(), buf: make([]byte, 0, batchCommitBytes+512<<10)}, nil
}

func (w *segmentWriter) put(id [32]byte, raw int, frame []byte) error {
	if err := w.batch.Set(metaKey(id), meta(raw, frame, uint64(w.seg), uint64(w.off)), nil); err != nil {
		return err
	}
	w.buf = append(w.buf, frame...)
	w.off += int64(len(frame))
	if len(w.buf) < batchCommitBytes {
		return nil
	}
	return w.flush(pebble.NoSync)
}

// flush writes buffered frames to the segment, then commits their index
// entries; a synced flush fsyncs the segment before the index commit, so a
// durable index entry never points at bytes that are not durable.
func (w *segmentWriter) flush(opts *pebble.WriteOptions) error {
	if _, err := w.f.Write(w.buf); err != nil {
		return err
	}
	w.buf = w.buf[:0]
	if opts.Sync {
		if err := w.f.Sync(); err != nil {
			return err
		}
	}
	if err := w.batch.Commit(opts); err != nil {
		return err
	}
	w.batch.Reset()
	return nil
}

func (w *segmentWriter) finish() error {
	defer w.batch.Close()
	return w.flush(pebble.Sync)
}

func (l *segmentLayout) read(id [32]byte, w io.Writer, scratch []byte) (int, error) {
	m, closer, err := l.db.Get(metaKey(id))
	if err != nil {
		return 0, err
	}
	n, crc := binary.LittleEndian.Uint32(m[4:]), binary.LittleEndian.Uint32(m[8:])
	seg, off := uint32(binary.LittleEndian.Uint64(m[20:])), int64(binary.LittleEndian.Uint64(m[28:]))
	_ = closer.Close()
	l.mu.Lock()
	f, ok := l.files[seg]
	if !ok { // reopened: open segments lazily
		if f, err = os.Open(l.segPath(seg)); err != nil {
			l.mu.Unlock()
			return 0, err
		}
		l.files[seg] = f
	}
	l.mu.Unlock()
	frame := scratch[:n]
	if _, err := f.ReadAt(frame, off); err != nil {
		return 0, err
	}
	if crc32.Checksum(frame, castagnoli) != crc {
		return 0, errCorrupt
	}
	return w.Write(frame)
}

func (l *segmentLayout) segPath(seg uint32) string {
	return filepath.Join(l.dir, fmt.Sprintf("seg-%08d", seg))
}

func (l *segmentLayout) close() error {
	for _, f := range l.files {
		_ = f.Close()
	}
	return l.db.Close()
}
