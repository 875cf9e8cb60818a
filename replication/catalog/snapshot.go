package catalog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/klauspost/compress/zstd"

	"github.com/garret-cache/garret/internal/durable"
	"github.com/hashicorp/raft"
)

// A snapshot is a header line, then records (u32 key length, key, u32 value
// length, value; little endian) for every key of a pebble snapshot, the
// applied index included, in key order.
//
// Version 2 compresses the records with zstd, and ends them with a trailer
// (u32 snapshotEnd, u64 number of records) inside the compressed stream, so
// a snapshot cut short anywhere is refused. Version 1 (written before) has
// the records uncompressed, without a trailer; it is still restored: nodes
// keep their snapshots on disk, and a leader of an older version may send
// one.
const (
	snapshotHeader   = "garret-catalog-snapshot 2\n"
	snapshotHeaderV1 = "garret-catalog-snapshot 1\n"
	snapshotEnd      = 1<<32 - 1 // a length no record can have
)

// maxSnapshotRecord bounds a key or value read from a snapshot, so a
// corrupt or hostile one cannot make restore allocate gigabytes. Every key
// and value was written by applying one log entry, which raft-wal caps at
// 64 MiB (MaxBatchBytes), and one validated command is at most
// MaxCommandBytes (8 MiB): the largest value, an object with the most
// references, stays well below this.
const maxSnapshotRecord = 64 << 20

// Snapshots are compressed with zstd's fastest level: the records are
// mostly random hashes, and at 10⁵ objects of the catalog's usual shape it
// compressed them to 34 % of their size in 0.65 s, where the default
// level reached 35 % in 0.9 s and "better" 35 % in 3.4 s. One encoder, in
// the goroutine that reads the pebble snapshot: with two (compression
// overlapping the reads) a snapshot of 3·10⁵ objects took 2.1–2.6 s and
// 3.0–3.9 s of CPU, with one 2.2–2.8 s and 2.2–3.4 s. A snapshot is
// background work; on a node of two cores the second encoder takes the core
// the node serves from (in a bench run at 10⁶ paths whose last snapshot
// fell on the first narinfo measurement, p99 at one connection was 3.6 ms
// there and 1.5 ms in the next).
var snapshotEncoderOptions = []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1)}

// snapshotMaxWindow bounds the zstd window restore accepts (the encoder's
// at the fastest level is 4 MiB), hence the decoder's memory.
const snapshotMaxWindow = 8 << 20

// snapshotV2Since is the CommandVersion that reads snapshot format 2: while
// a Raft server is older, snapshots are written in format 1, which it can
// restore (a leader sends its latest snapshot to a follower far behind).
const snapshotV2Since = 4

type snapshot struct {
	snap *pebble.Snapshot
	v1   bool // write format 1: some server may not read format 2
}

// Persist writes every key of the pebble snapshot, the applied index included.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if s.v1 {
		return s.persistV1(sink)
	}
	err := func() error {
		if _, err := io.WriteString(sink, snapshotHeader); err != nil {
			return err
		}
		enc, err := zstd.NewWriter(sink, snapshotEncoderOptions...)
		if err != nil {
			return err
		}
		defer enc.Close() // frees its goroutines; a no-op once closed
		w := bufio.NewWriterSize(enc, 256<<10)
		if err := s.writeRecords(w, true); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		return enc.Close()
	}()
	return finishPersist(sink, err)
}

// persistV1 writes format 1: the records uncompressed, no trailer.
func (s *snapshot) persistV1(sink raft.SnapshotSink) error {
	w := bufio.NewWriterSize(sink, 256<<10)
	_, err := w.WriteString(snapshotHeaderV1)
	if err == nil {
		err = s.writeRecords(w, false)
	}
	if err == nil {
		err = w.Flush()
	}
	return finishPersist(sink, err)
}

func finishPersist(sink raft.SnapshotSink, err error) error {
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("catalog: persist snapshot: %w", err)
	}
	return sink.Close()
}

// writeRecords writes every record, then (format 2) the trailer.
func (s *snapshot) writeRecords(w *bufio.Writer, trailer bool) error {
	it, err := s.snap.NewIter(nil)
	if err != nil {
		return err
	}
	defer it.Close()
	var l [4]byte
	var n uint64
	for it.First(); it.Valid(); it.Next() {
		n++
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		for _, part := range [][]byte{it.Key(), v} {
			binary.LittleEndian.PutUint32(l[:], uint32(len(part)))
			if _, err := w.Write(l[:]); err != nil {
				return err
			}
			if _, err := w.Write(part); err != nil {
				return err
			}
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if !trailer {
		return nil
	}
	binary.LittleEndian.PutUint32(l[:], snapshotEnd)
	if _, err := w.Write(l[:]); err != nil {
		return err
	}
	_, err = w.Write(binary.LittleEndian.AppendUint64(nil, n))
	return err
}

// Release frees the pebble snapshot.
func (s *snapshot) Release() { _ = s.snap.Close() }

// restore loads a snapshot into a new state directory, then swaps it in:
// the CURRENT pointer is replaced by an atomic rename.
func (s *state) restore(r io.Reader) (uint64, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	hdr := make([]byte, len(snapshotHeader))
	if _, err := io.ReadFull(br, hdr); err != nil {
		return 0, errors.New("catalog: not a catalog snapshot")
	}
	records := &recordReader{r: br}
	switch string(hdr) {
	case snapshotHeaderV1:
	case snapshotHeader:
		dec, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(2), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(snapshotMaxWindow), zstd.WithDecoderMaxMemory(snapshotMaxWindow))
		if err != nil {
			return 0, err
		}
		defer dec.Close()
		records = &recordReader{r: bufio.NewReaderSize(dec, 256<<10), trailer: true}
	default:
		return 0, fmt.Errorf("catalog: not a catalog snapshot this node can read (header %q)", hdr)
	}
	name := "state-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	path := filepath.Join(s.dir, name)
	db, err := openPebble(path, s.log, s.fs)
	if err != nil {
		return 0, err
	}
	if err := loadRecords(db, path+".ingest", records); err != nil {
		_ = db.Close()
		_ = os.RemoveAll(path)
		return 0, err
	}
	idx, err := appliedIndex(db)
	if err != nil {
		_ = db.Close()
		_ = os.RemoveAll(path)
		return 0, err
	}
	if err := durable.WriteFile(filepath.Join(s.dir, "CURRENT"), []byte(name+"\n"), 0o600); err != nil {
		return 0, err
	}
	s.mu.Lock()
	old := s.db
	s.db = db
	s.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	// Remove every state directory but the live one.
	entries, _ := os.ReadDir(s.dir)
	for _, e := range entries {
		if e.IsDir() && e.Name() != name && (e.Name() == "state" || len(e.Name()) > 6 && e.Name()[:6] == "state-") {
			_ = os.RemoveAll(filepath.Join(s.dir, e.Name()))
		}
	}
	return idx, nil
}

// recordReader reads a snapshot's records into buffers it reuses.
type recordReader struct {
	r        io.Reader
	trailer  bool   // version 2: the records end with a trailer
	count    uint64 // records read
	l        [4]byte
	key, val []byte
}

// errNoTrailer is a version 2 snapshot that ends before its trailer.
var errNoTrailer = errors.New("catalog: snapshot record: the snapshot ends before its trailer (truncated?)")

// next reads one record; io.EOF ends the snapshot: at its trailer (version
// 2), or at the end of the stream between two records (version 1). Its key
// and value are valid until the next call.
func (rr *recordReader) next() (key, val []byte, err error) {
	if _, err := io.ReadFull(rr.r, rr.l[:]); err != nil {
		if err == io.EOF && rr.trailer {
			return nil, nil, errNoTrailer
		}
		if err == io.EOF {
			return nil, nil, io.EOF
		}
		return nil, nil, fmt.Errorf("catalog: snapshot record: %w", err)
	}
	if n := binary.LittleEndian.Uint32(rr.l[:]); n == snapshotEnd && rr.trailer {
		return nil, nil, rr.end()
	}
	if rr.key, err = rr.part(rr.key); err != nil {
		return nil, nil, fmt.Errorf("catalog: snapshot record: %w", err)
	}
	if _, err := io.ReadFull(rr.r, rr.l[:]); err != nil {
		return nil, nil, fmt.Errorf("catalog: snapshot record: %w", noEOF(err))
	}
	if rr.val, err = rr.part(rr.val); err != nil {
		return nil, nil, fmt.Errorf("catalog: snapshot record: %w", err)
	}
	rr.count++
	return rr.key, rr.val, nil
}

// part reads the key or value whose length is in rr.l.
func (rr *recordReader) part(buf []byte) ([]byte, error) {
	n := binary.LittleEndian.Uint32(rr.l[:])
	if n > maxSnapshotRecord {
		return buf, fmt.Errorf("a key or value of %d bytes, over the limit of %d (corrupt snapshot?)", n, maxSnapshotRecord)
	}
	if uint32(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err := io.ReadFull(rr.r, buf)
	return buf, noEOF(err)
}

// end checks the trailer's record count, and that nothing follows it.
func (rr *recordReader) end() error {
	var c [8]byte
	if _, err := io.ReadFull(rr.r, c[:]); err != nil {
		return fmt.Errorf("catalog: snapshot trailer: %w", noEOF(err))
	}
	if n := binary.LittleEndian.Uint64(c[:]); n != rr.count {
		return fmt.Errorf("catalog: snapshot trailer: %d records, but %d were read (corrupt snapshot?)", n, rr.count)
	}
	// Reading on to the end also has zstd check the stream's checksum.
	switch _, err := io.ReadFull(rr.r, c[:1]); err {
	case io.EOF:
		return io.EOF
	case nil:
		return errors.New("catalog: snapshot trailer: followed by more data (corrupt snapshot?)")
	default:
		return fmt.Errorf("catalog: snapshot: %w", err)
	}
}

// noEOF turns an EOF within a record into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// restoreTableSize is the size of the tables restore writes (pebble's
// default target for its last level is 128 MiB).
const restoreTableSize = 64 << 20

// loadRecords writes the records into sstables in dir, and ingests them into
// db, a new, empty database. The records come in key order (a pebble
// iterator wrote them), so each byte is written once, into tables of the
// last level, with no write-ahead log, memtable flushes or compactions: at
// 10⁶ objects (TestSnapshotScale, 306 MiB of snapshot) this took 7.2 s
// where committing 16 MiB batches took 9.0 s, on the same busy 2 cores
// (5.2 s on quieter ones).
//
// It is crash-safe as the batches were: db's directory is not the live
// state until restore points CURRENT at it, after this returns. Ingest
// syncs the tables and records them in db's MANIFEST in one atomic edit,
// so db has all of them or none; a crash before the CURRENT rename leaves
// the old state live, and the half-built directories (named state-*) are
// removed by the next restore.
func loadRecords(db *pebble.DB, dir string, rr *recordReader) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o := pebbleOptions(nil, nil, nil)
	o.EnsureDefaults()
	wo := o.MakeWriterOptions(len(o.Levels)-1, db.TableFormat())
	var paths []string
	var w *sstable.Writer
	defer func() {
		if w != nil {
			_ = w.Close()
		}
	}()
	finish := func() error {
		err := w.Close()
		w = nil
		return err
	}
	var prev []byte
	for {
		k, v, err := rr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if prev != nil && bytes.Compare(k, prev) <= 0 {
			return fmt.Errorf("catalog: snapshot record: key %q does not follow %q (corrupt snapshot?)", k, prev)
		}
		prev = append(prev[:0], k...)
		if w == nil {
			p := filepath.Join(dir, fmt.Sprintf("%06d.sst", len(paths)))
			f, err := vfs.Default.Create(p, vfs.WriteCategoryUnspecified)
			if err != nil {
				return err
			}
			paths = append(paths, p)
			w = sstable.NewWriter(objstorageprovider.NewFileWritable(f), wo)
		}
		if err := w.Set(k, v); err != nil {
			return err
		}
		if w.Raw().EstimatedSize() >= restoreTableSize {
			if err := finish(); err != nil {
				return err
			}
		}
	}
	if w != nil {
		if err := finish(); err != nil {
			return err
		}
	}
	if len(paths) == 0 {
		return nil
	}
	return db.Ingest(context.Background(), paths)
}
