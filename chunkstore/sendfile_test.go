package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// readerFromRecorder is a writer with ReadFrom, as net/http's response is:
// it records how many bytes came through ReadFrom.
type readerFromRecorder struct {
	bytes.Buffer
	viaReadFrom int64
}

func (r *readerFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	n, err := r.Buffer.ReadFrom(src)
	r.viaReadFrom += n
	return n, err
}

// TestSendfile_OverTCP: a NAR served to a TCP connection goes the checked
// way the first time and by sendfile once its frames were checked; both
// streams, and ranges starting inside frames, are the same bytes.
func TestSendfile_OverTCP(t *testing.T) {
	s := newTestStore(t)
	data := testData(90, 3<<20)
	_, id := mustIngest(t, s, data)
	want := served(t, s, id) // checks every frame
	s.verified.forget()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(c)
		got <- b
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	nar, err := s.OpenNAR(id)
	if err != nil {
		t.Fatal(err)
	}
	ranges := [][2]int64{{0, nar.Size}, {0, nar.Size}, {70001, 300000}, {nar.Size - 5000, 5000}}
	var expect []byte
	for i, r := range ranges {
		before := testutil.ToFloat64(s.metrics.framesSent)
		if n, err := nar.WriteRange(context.Background(), c, r[0], r[1]); err != nil || n != r[1] {
			t.Fatalf("range %d: %d of %d bytes, %v", i, n, r[1], err)
		}
		sent := testutil.ToFloat64(s.metrics.framesSent) - before
		if i == 0 && sent != 0 {
			t.Fatalf("the first stream sent %v frames unchecked", sent)
		}
		if i > 0 && sent == 0 {
			t.Fatalf("range %d: no frame went by sendfile after all were checked", i)
		}
		expect = append(expect, want[r[0]:r[0]+r[1]]...)
	}
	c.Close()
	if b := <-got; !bytes.Equal(b, expect) {
		t.Fatalf("received %d bytes, want %d, or different bytes", len(b), len(expect))
	}
	if !bytes.Equal(decode(t, want), data) {
		t.Fatal("frames do not decode to the NAR")
	}
}

// TestSendfile_FallsBack: frames not checked lately, a segment file that is
// gone, and a segment cut short after its frames were checked are all
// served (or refused) the checked way.
func TestSendfile_FallsBack(t *testing.T) {
	s := newTestStore(t)
	res, id := mustIngest(t, s, testData(91, 2<<20))
	want := served(t, s, id)
	nar, err := s.OpenNAR(id)
	if err != nil {
		t.Fatal(err)
	}
	serve := func() (*readerFromRecorder, error) {
		var w readerFromRecorder
		_, err := nar.WriteRange(context.Background(), &w, 0, nar.Size)
		return &w, err
	}

	w, err := serve()
	if err != nil || !bytes.Equal(w.Bytes(), want) || w.viaReadFrom < nar.Size/2 {
		t.Fatalf("checked frames: %v, %d of %d bytes by ReadFrom", err, w.viaReadFrom, nar.Size)
	}
	s.verified.forget()
	if w, err = serve(); err != nil || !bytes.Equal(w.Bytes(), want) || w.viaReadFrom != 0 {
		t.Fatalf("after the checks aged out: %v, %d bytes by ReadFrom", err, w.viaReadFrom)
	}

	// The segment is renamed away while the store holds it open (as when
	// compaction unlinks a file a reader still uses): the store's descriptor
	// still reads it, sendfile's own cannot open it.
	served(t, s, id)
	segs := map[uint32]*segFile{}
	for _, c := range res.Manifest.Chunks {
		m, _, _ := s.getMeta(c.ID)
		if segs[m.seg] != nil {
			continue
		}
		if segs[m.seg], err = s.segs.acquire(m.seg); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(s.segs.path(m.seg), s.segs.path(m.seg)+".away"); err != nil {
			t.Fatal(err)
		}
	}
	if w, err = serve(); err != nil || !bytes.Equal(w.Bytes(), want) || w.viaReadFrom != 0 {
		t.Fatalf("segment files gone: %v, %d bytes by ReadFrom", err, w.viaReadFrom)
	}
	for seg, sf := range segs {
		if err := os.Rename(s.segs.path(seg)+".away", s.segs.path(seg)); err != nil {
			t.Fatal(err)
		}
		s.segs.release(sf)
	}

	// Cut short after every frame was checked: sendfile stops at the end of
	// the file and the checked read of the next frame reports the damage.
	last := s.verified
	if w, err = serve(); err != nil || w.viaReadFrom == 0 {
		t.Fatalf("before the cut: %v, %d bytes by ReadFrom", err, w.viaReadFrom)
	}
	// The frame stored last (two compressors may have written the last two
	// chunks in either order): cutting it leaves every other frame whole.
	var lm chunkMeta
	for _, c := range res.Manifest.Chunks {
		if m, _, _ := s.getMeta(c.ID); m.seg > lm.seg || (m.seg == lm.seg && m.off > lm.off) {
			lm = m
		}
	}
	if err := os.Truncate(s.segs.path(lm.seg), lm.off+int64(lm.frameSize)/2); err != nil {
		t.Fatal(err)
	}
	w, err = serve()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated segment: %v", err)
	}
	if !bytes.HasPrefix(want, w.Bytes()) {
		t.Fatal("bytes served before the damage differ")
	}
	if last.has(lm) {
		t.Fatal("the dropped frame is still trusted")
	}
}

// TestVerifiedFrames_Bounded: checks age out after at most two generations
// and the set never holds more than two generations' entries.
func TestVerifiedFrames_Bounded(t *testing.T) {
	v := newVerifiedFrames()
	now := time.Unix(1000, 0)
	v.now = func() time.Time { return now }
	v.started = now
	a := chunkMeta{seg: 1, off: 0}
	v.add(a)
	now = now.Add(verifiedMaxAge + time.Second)
	v.add(chunkMeta{seg: 1, off: 100}) // rotates: a is in the previous generation
	if !v.has(a) {
		t.Fatal("a check one generation old is forgotten")
	}
	now = now.Add(verifiedMaxAge + time.Second)
	v.add(chunkMeta{seg: 1, off: 200})
	if v.has(a) {
		t.Fatal("a check two generations old is still trusted")
	}
	for i := range 3 * verifiedPerGeneration {
		v.add(chunkMeta{seg: 2, off: int64(i)})
	}
	if n := len(v.cur) + len(v.prev); n > 2*verifiedPerGeneration {
		t.Fatalf("%d entries", n)
	}
	if !v.has(chunkMeta{seg: 2, off: 3*verifiedPerGeneration - 1}) {
		t.Fatal("the newest check is forgotten")
	}
}
