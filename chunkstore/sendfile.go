package chunkstore

import (
	"io"
	"os"
	"sync"
	"time"
)

// Zero-copy serving. A frame served with pread + write crosses memory twice
// (page cache → buffer → socket) and is CRC-checked on the way; BenchmarkNarDownload's
// profile puts 42 % of the server's CPU in pread and 42 % in write. A frame
// whose bytes passed a CRC-32C check recently in a NAR stream (only there:
// frames sent to peers or scrubbed do not enter the set) is instead handed
// to the socket with sendfile (io.ReaderFrom on an *os.File section, which
// net.TCPConn turns into sendfile(2)): one copy, no buffer, no CRC again.
//
// What that gives up: bytes that change on disk within seconds of a check
// are served unchecked until the check ages out (at most 2 × verifiedMaxAge
// = 20 s), instead of being dropped and repaired on that read; the first read
// after it finds them. Nix still rejects such a NAR (it checks NarHash), peers
// still check every frame they fetch (BLAKE3), scrub still reads every frame
// in full, and a frame dropped as corrupt leaves the set at once. The first
// serve of a frame, and every serve of one not checked in the last seconds,
// goes through the CRC as before. Hot frames are re-checked every ~20 s,
// which costs a busy node nothing measurable.

const (
	// verifiedPerGeneration bounds the set: two generations of this many
	// frame locations (~2 MiB each), enough for the hot frames of a busy
	// node (64 Ki frames ≈ 4 GiB of NAR at the 64 KiB average chunk).
	verifiedPerGeneration = 1 << 16
	// verifiedMaxAge ends a generation even when it is not full, so a frame
	// is CRC-checked again at least every 2 × verifiedMaxAge while served.
	verifiedMaxAge = 10 * time.Second
	// sendfileMin is the least run of frame bytes worth a sendfile: below
	// it, the seek and the extra call cost more than the copy saved.
	sendfileMin = 4 << 10
)

// frameLoc is where a frame's bytes are: segment ids are never reused and
// segments are append-only, so a location names the same bytes for the life
// of the store.
type frameLoc struct {
	seg uint32
	off int64
}

// verifiedFrames is the bounded set of frame locations whose bytes passed a
// CRC-32C check recently.
type verifiedFrames struct {
	mu        sync.Mutex
	cur, prev map[frameLoc]struct{}
	started   time.Time
	now       func() time.Time
}

func newVerifiedFrames() *verifiedFrames {
	return &verifiedFrames{cur: map[frameLoc]struct{}{}, started: time.Now(), now: time.Now}
}

func (v *verifiedFrames) add(m chunkMeta) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cur) >= verifiedPerGeneration || v.now().Sub(v.started) > verifiedMaxAge {
		v.prev, v.cur, v.started = v.cur, make(map[frameLoc]struct{}, len(v.cur)), v.now()
	}
	v.cur[frameLoc{m.seg, m.off}] = struct{}{}
}

func (v *verifiedFrames) has(m chunkMeta) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	l := frameLoc{m.seg, m.off}
	if _, ok := v.cur[l]; ok {
		return true
	}
	_, ok := v.prev[l]
	return ok
}

// drop forgets one location (its frame was found bad and dropped).
func (v *verifiedFrames) drop(m chunkMeta) {
	v.mu.Lock()
	l := frameLoc{m.seg, m.off}
	delete(v.cur, l)
	delete(v.prev, l)
	v.mu.Unlock()
}

// ForgetChecks makes the next stream of every frame check its CRC again, as
// it would once the recent checks aged out (at most 20 s): for a test that
// damages a frame on disk and reads it at once.
func (s *Store) ForgetChecks() { s.verified.forget() }

// forget empties the set, as if every check had aged out.
func (v *verifiedFrames) forget() {
	v.mu.Lock()
	v.cur, v.prev = map[frameLoc]struct{}{}, nil
	v.mu.Unlock()
}

// segReaders are read-only descriptors of segment files, one per segment a
// WriteRange sends from: sendfile reads from the descriptor's own offset, so
// the store's shared descriptors (read with pread) cannot be used.
type segReaders struct {
	s     *Store
	files map[uint32]*os.File
}

// open returns the segment's descriptor, or nil if the file is gone
// (compaction moved its frames: the caller falls back to the index).
func (r *segReaders) open(seg uint32) *os.File {
	if f, ok := r.files[seg]; ok {
		return f
	}
	if r.files == nil {
		r.files = map[uint32]*os.File{}
	}
	f, err := os.Open(r.s.segs.path(seg))
	if err != nil {
		f = nil
	}
	r.files[seg] = f
	return f
}

func (r *segReaders) close() {
	for _, f := range r.files {
		if f != nil {
			f.Close()
		}
	}
}

// sendRun sends, with w's ReadFrom, the served bytes from `from` (inside
// frame i) on through the run of frames that follow it contiguously in one
// segment and were all verified recently, at most max bytes. It returns the
// bytes sent and the bytes it meant to send; size 0 means frame i does not
// start such a run (or the run is too short to be worth it), and the caller
// serves it the checked way. A run cut short by the file (a truncated
// segment: sent < size, no error) is the caller's to finish the checked way,
// which finds the damage.
func (n *NAR) sendRun(w io.ReaderFrom, files *segReaders, i int, from, max int64) (sent, size int64, err error) {
	first := n.metas[i]
	if (n.pending != nil && n.pending[i]) || !n.s.verified.has(first) {
		return 0, 0, nil
	}
	within := from - n.offsets[i]
	end := first.off + int64(first.frameSize) // end of the run in the segment
	frames := 1
	for j := i + 1; j < len(n.metas) && end-first.off-within < max; j++ {
		m := n.metas[j]
		if (n.pending != nil && n.pending[j]) || m.seg != first.seg || m.off != end || !n.s.verified.has(m) {
			break
		}
		end += int64(m.frameSize)
		frames++
	}
	size = min(end-first.off-within, max)
	if size < sendfileMin {
		return 0, 0, nil
	}
	f := files.open(first.seg)
	if f == nil {
		return 0, 0, nil
	}
	if _, err := f.Seek(first.off+within, io.SeekStart); err != nil {
		return 0, 0, nil
	}
	sent, err = w.ReadFrom(&io.LimitedReader{R: f, N: size})
	n.s.metrics.framesRead.Add(float64(frames))
	n.s.metrics.frameBytesRead.Add(float64(sent))
	n.s.metrics.framesSent.Add(float64(frames))
	return sent, size, err
}
