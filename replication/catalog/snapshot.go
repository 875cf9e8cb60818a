package catalog

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/garret-cache/garret/internal/durable"
	"github.com/hashicorp/raft"
)

// A snapshot is a header line, then records (u32 key length, key, u32 value
// length, value; little endian) for every key of a pebble snapshot, the
// applied index included, in key order. Version 2 compresses the records
// as one zstd stream; version 1 (written before) has them uncompressed, and
// is still restored: nodes keep their snapshots on disk, and a leader of an
// older version may send one.
const (
	snapshotHeader   = "garret-catalog-snapshot 2\n"
	snapshotHeaderV1 = "garret-catalog-snapshot 1\n"
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
// level reached 35 % in 0.9 s and "better" 35 % in 3.4 s. Two encoders let
// compression overlap reading the pebble snapshot (nodes have few cores).
var snapshotEncoderOptions = []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(2)}

// snapshotMaxWindow bounds the zstd window restore accepts (the encoder's
// at the fastest level is 4 MiB), hence the decoder's memory.
const snapshotMaxWindow = 8 << 20

type snapshot struct{ snap *pebble.Snapshot }

// Persist writes every key of the pebble snapshot, the applied index included.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
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
		if err := s.writeRecords(w); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		return enc.Close()
	}()
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("catalog: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) writeRecords(w *bufio.Writer) error {
	it, err := s.snap.NewIter(nil)
	if err != nil {
		return err
	}
	defer it.Close()
	var l [4]byte
	for it.First(); it.Valid(); it.Next() {
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
	return it.Error()
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
	var records io.Reader
	switch string(hdr) {
	case snapshotHeaderV1:
		records = br
	case snapshotHeader:
		dec, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(2), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(snapshotMaxWindow), zstd.WithDecoderMaxMemory(snapshotMaxWindow))
		if err != nil {
			return 0, err
		}
		defer dec.Close()
		records = bufio.NewReaderSize(dec, 256<<10)
	default:
		return 0, fmt.Errorf("catalog: not a catalog snapshot this node can read (header %q)", hdr)
	}
	name := "state-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	path := filepath.Join(s.dir, name)
	db, err := openPebble(path, s.log)
	if err != nil {
		return 0, err
	}
	if err := loadRecords(db, records); err != nil {
		_ = db.Close()
		_ = os.RemoveAll(path)
		return 0, err
	}
	idx, err := appliedIndex(db)
	if err != nil {
		_ = db.Close()
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
	l        [4]byte
	key, val []byte
}

// next reads one record; io.EOF at a record boundary ends the snapshot. Its
// key and value are valid until the next call.
func (rr *recordReader) next() (key, val []byte, err error) {
	if rr.key, err = rr.part(rr.key); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, io.EOF
		}
		return nil, nil, fmt.Errorf("catalog: snapshot record: %w", err)
	}
	if rr.val, err = rr.part(rr.val); err != nil {
		return nil, nil, fmt.Errorf("catalog: snapshot record: %w", noEOF(err))
	}
	return rr.key, rr.val, nil
}

func (rr *recordReader) part(buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(rr.r, rr.l[:]); err != nil {
		return buf, err
	}
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

// noEOF turns an EOF within a record into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func loadRecords(db *pebble.DB, r io.Reader) error {
	b := db.NewBatch()
	rr := &recordReader{r: r}
	for {
		k, v, err := rr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := b.Set(k, v, nil); err != nil {
			return err
		}
		if b.Len() > 16<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b = db.NewBatch()
		}
	}
	return b.Commit(pebble.Sync)
}
