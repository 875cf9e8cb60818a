package chunkstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// errSegmentGone: the segment file was compacted away; re-read the chunk's
// index entry for its new place.
var errSegmentGone = errors.New("chunkstore: segment gone")

// segments manages the append-only frame files. Frames are appended to one
// active segment at a time (concurrent appends reserve disjoint ranges under
// the lock and write outside it); a segment is sealed when it reaches its
// target size and is never written again, not even after a restart, so a
// torn tail after a crash is just dead bytes for compaction.
//
// Two counts per file, both in memory only: refs (goroutines using the file
// descriptor right now, so an unlinked file stays readable until they are
// done) and pending (frames appended but not yet in the index, so compaction
// leaves the file alone). Neither is a reference count of stored data.
type segments struct {
	dir    string
	target int64

	mu         sync.Mutex
	files      map[uint32]*segFile // open or pinned files
	active     *segFile
	activeSize int64
	next       uint32
}

type segFile struct {
	id      uint32
	f       *os.File
	refs    int
	pending int
	gone    bool
}

type segInfo struct {
	id   uint32
	size int64
}

func openSegments(dir string, target int64) (*segments, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chunkstore: %w", err)
	}
	s := &segments{dir: dir, target: target, files: map[uint32]*segFile{}, next: 1}
	for _, si := range s.list() {
		s.next = max(s.next, si.id+1)
	}
	return s, nil
}

func (s *segments) path(id uint32) string { return filepath.Join(s.dir, fmt.Sprintf("%08x.seg", id)) }

// list returns the segment files on disk with their sizes, oldest first.
func (s *segments) list() []segInfo {
	entries, _ := os.ReadDir(s.dir)
	var out []segInfo
	for _, e := range entries {
		var id uint32
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if _, err := fmt.Sscanf(name, "%08x", &id); !ok || err != nil || e.IsDir() {
			continue
		}
		if fi, err := e.Info(); err == nil {
			out = append(out, segInfo{id, fi.Size()})
		}
	}
	slices.SortFunc(out, func(a, b segInfo) int { return int(a.id) - int(b.id) })
	return out
}

// append writes frame to the active segment and pins that segment until the
// caller unpins it (after committing or abandoning the index entry).
func (s *segments) append(frame []byte) (uint32, int64, error) {
	s.mu.Lock()
	if s.active == nil || (s.activeSize > 0 && s.activeSize+int64(len(frame)) > s.target) {
		if err := s.roll(); err != nil {
			s.mu.Unlock()
			return 0, 0, err
		}
	}
	sf, off := s.active, s.activeSize
	s.activeSize += int64(len(frame))
	sf.refs++
	sf.pending++
	s.mu.Unlock()

	_, err := sf.f.WriteAt(frame, off)
	s.release(sf)
	if err != nil {
		s.unpin(sf.id, 1)
		return 0, 0, fmt.Errorf("chunkstore: write segment: %w", err)
	}
	return sf.id, off, nil
}

// roll seals the active segment and creates the next one. s.mu is held.
func (s *segments) roll() error {
	id := s.next
	f, err := os.OpenFile(s.path(id), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("chunkstore: new segment: %w", err)
	}
	// The file's directory entry must be durable before any index entry
	// points into it.
	if d, err := os.Open(s.dir); err == nil {
		err = d.Sync()
		_ = d.Close()
		if err != nil {
			_ = f.Close()
			return fmt.Errorf("chunkstore: sync segment dir: %w", err)
		}
	}
	s.next++
	old := s.active
	s.active, s.activeSize = &segFile{id: id, f: f}, 0
	s.files[id] = s.active
	if old != nil {
		s.maybeClose(old)
	}
	return nil
}

// acquire returns an open segment for reading or syncing; release it after.
func (s *segments) acquire(id uint32) (*segFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sf := s.files[id]
	if sf != nil && sf.gone {
		return nil, errSegmentGone
	}
	if sf == nil || sf.f == nil {
		f, err := os.OpenFile(s.path(id), os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errSegmentGone
		} else if err != nil {
			return nil, fmt.Errorf("chunkstore: open segment: %w", err)
		}
		if sf == nil {
			sf = &segFile{id: id}
			s.files[id] = sf
		}
		sf.f = f
	}
	sf.refs++
	return sf, nil
}

func (s *segments) release(sf *segFile) {
	s.mu.Lock()
	sf.refs--
	s.maybeClose(sf)
	s.mu.Unlock()
}

// unpin records that n frames appended to segment id are now in the index,
// or abandoned.
func (s *segments) unpin(id uint32, n int) {
	s.mu.Lock()
	if sf := s.files[id]; sf != nil {
		sf.pending -= n
		s.maybeClose(sf)
	}
	s.mu.Unlock()
}

// maybeClose drops an idle, sealed file's descriptor. s.mu is held.
func (s *segments) maybeClose(sf *segFile) {
	if sf == s.active || sf.refs > 0 {
		return
	}
	if sf.f != nil {
		_ = sf.f.Close()
		sf.f = nil
	}
	if sf.pending == 0 {
		delete(s.files, sf.id)
	}
}

// sync makes a segment's written bytes durable.
func (s *segments) sync(id uint32) error {
	sf, err := s.acquire(id)
	if err != nil {
		return err
	}
	defer s.release(sf)
	if err := sf.f.Sync(); err != nil {
		return fmt.Errorf("chunkstore: sync segment: %w", err)
	}
	return nil
}

// idle reports whether a segment is sealed and has no frames waiting for
// their index entries: its set of indexed frames can then only shrink.
func (s *segments) idle(id uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != nil && s.active.id == id {
		return false
	}
	sf := s.files[id]
	return sf == nil || sf.pending == 0
}

// remove unlinks a segment. Readers holding it finish from the open file.
func (s *segments) remove(id uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sf := s.files[id]; sf != nil {
		sf.gone = true
		if sf.refs == 0 {
			if sf.f != nil {
				_ = sf.f.Close()
			}
			delete(s.files, id)
		}
	}
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("chunkstore: remove segment: %w", err)
	}
	return nil
}

func (s *segments) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, sf := range s.files {
		if sf.f != nil {
			errs = append(errs, sf.f.Close())
			sf.f = nil
		}
	}
	s.active = nil
	return errors.Join(errs...)
}
