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
	"github.com/garret-cache/garret/internal/durable"
	"github.com/hashicorp/raft"
)

// snapshotHeader starts every snapshot; records follow as
// (u32 key length, key, u32 value length, value).
const snapshotHeader = "garret-catalog-snapshot 1\n"

type snapshot struct{ snap *pebble.Snapshot }

// Persist writes every key of the pebble snapshot, the applied index included.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	err := func() error {
		w := bufio.NewWriterSize(sink, 256<<10)
		if _, err := w.WriteString(snapshotHeader); err != nil {
			return err
		}
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
		if err := it.Error(); err != nil {
			return err
		}
		return w.Flush()
	}()
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("catalog: persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release frees the pebble snapshot.
func (s *snapshot) Release() { _ = s.snap.Close() }

// restore loads a snapshot into a new state directory, then swaps it in:
// the CURRENT pointer is replaced by an atomic rename.
func (s *state) restore(r io.Reader) (uint64, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	hdr := make([]byte, len(snapshotHeader))
	if _, err := io.ReadFull(br, hdr); err != nil || string(hdr) != snapshotHeader {
		return 0, errors.New("catalog: not a catalog snapshot")
	}
	name := "state-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	path := filepath.Join(s.dir, name)
	db, err := openPebble(path, s.log)
	if err != nil {
		return 0, err
	}
	if err := loadRecords(db, br); err != nil {
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

func loadRecords(db *pebble.DB, r io.Reader) error {
	b := db.NewBatch()
	var l [4]byte
	readPart := func() ([]byte, error) {
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, err
		}
		p := make([]byte, binary.LittleEndian.Uint32(l[:]))
		_, err := io.ReadFull(r, p)
		return p, err
	}
	for {
		k, err := readPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("catalog: snapshot record: %w", err)
		}
		v, err := readPart()
		if err != nil {
			return fmt.Errorf("catalog: snapshot record: %w", err)
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
