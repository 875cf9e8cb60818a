package catalog

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/zstd"
)

func zstdEncoder(w io.Writer) (*zstd.Encoder, error) {
	return zstd.NewWriter(w, snapshotEncoderOptions...)
}

// kv is one key and value of a state.
type kv struct{ k, v string }

// dump is every key and value of db, in order.
func dump(t *testing.T, db pebble.Reader) []kv {
	t.Helper()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []kv
	for it.First(); it.Valid(); it.Next() {
		out = append(out, kv{string(it.Key()), string(it.Value())})
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

// filledState is a state of n objects as putObject leaves them (objects,
// NAR URL index, change records), a cache, and the applied index n.
func filledState(t *testing.T, n int) *state {
	t.Helper()
	st, err := openState(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.close() })
	var size int64
	fillScaleState(t, st.db, n, &size)
	return st
}

// persisted is a snapshot of st in the current format.
func persisted(t *testing.T, st *state) []byte {
	t.Helper()
	snap := &snapshot{snap: st.db.NewSnapshot()}
	defer snap.Release()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

// encodeV1 is a version 1 snapshot of the records.
func encodeV1(records []kv) []byte {
	b := []byte(snapshotHeaderV1)
	for _, r := range records {
		for _, part := range []string{r.k, r.v} {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(part)))
			b = append(b, part...)
		}
	}
	return b
}

// encodeV2 is a version 2 snapshot of the records with the trailer given
// (nil: none).
func encodeV2(t *testing.T, records []kv, trailer []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString(snapshotHeader)
	enc, err := zstdEncoder(&buf)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = enc.Write(encodeV1(records)[len(snapshotHeaderV1):])
	_, _ = enc.Write(trailer)
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// trailer is a version 2 trailer counting n records.
func trailer(n int) []byte {
	return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint32(nil, snapshotEnd), uint64(n))
}

// restored restores snap into a new state and checks it holds want.
func restored(t *testing.T, snap []byte, want []kv, wantIndex uint64) {
	t.Helper()
	dst, err := openState(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.close()
	idx, err := dst.restore(bytes.NewReader(snap))
	if err != nil {
		t.Fatal(err)
	}
	if idx != wantIndex {
		t.Fatalf("applied index %d, want %d", idx, wantIndex)
	}
	got := dump(t, dst.db)
	if len(got) != len(want) {
		t.Fatalf("restored %d keys, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("key %d: got %q = %.40q, want %q = %.40q", i, got[i].k, got[i].v, want[i].k, want[i].v)
		}
	}
	// The restored state is the live one after a reopen.
	if err := dst.close(); err != nil {
		t.Fatal(err)
	}
	again, err := openState(dst.dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer again.close()
	if n := len(dump(t, again.db)); n != len(want) {
		t.Fatalf("reopened: %d keys, want %d", n, len(want))
	}
}

// TestSnapshot_RoundTrip: a version 2 snapshot (zstd) restores every key
// and value, and the applied index.
func TestSnapshot_RoundTrip(t *testing.T) {
	const n = 3000
	src := filledState(t, n)
	want := dump(t, src.db)
	snap := persisted(t, src)
	if !bytes.HasPrefix(snap, []byte(snapshotHeader)) || snapshotHeader == snapshotHeaderV1 {
		t.Fatalf("snapshot starts %q", snap[:min(len(snap), 30)])
	}
	var raw int
	for _, r := range want {
		raw += 8 + len(r.k) + len(r.v)
	}
	if len(snap) > raw/2 {
		t.Fatalf("snapshot of %d bytes for %d bytes of records: not compressed", len(snap), raw)
	}
	restored(t, snap, want, n)
	// encodeV2 (for the corrupt variants below) writes what Persist does.
	restored(t, encodeV2(t, want, trailer(len(want))), want, n)
}

// TestSnapshot_RestoresV1: snapshots written before compression (kept on
// disk, or sent by a leader of an older version) still restore.
func TestSnapshot_RestoresV1(t *testing.T) {
	const n = 3000
	src := filledState(t, n)
	want := dump(t, src.db)
	restored(t, encodeV1(want), want, n)
}

// TestSnapshot_V1WhileAnOldServerIsIn: while a Raft server's version
// predates format 2, the FSM writes format 1 (what that server restores);
// once every server has it, format 2.
func TestSnapshot_V1WhileAnOldServerIsIn(t *testing.T) {
	const n = 500
	st := filledState(t, n)
	want := dump(t, st.db)
	oldest := snapshotV2Since - 1
	f := &fsm{st: st, log: quiet, oldSnapshots: func() bool { return oldest < snapshotV2Since }}
	persist := func() []byte {
		snap, err := f.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		defer snap.Release()
		sink := &memSink{}
		if err := snap.Persist(sink); err != nil {
			t.Fatal(err)
		}
		return sink.Bytes()
	}
	if got := persist(); !bytes.Equal(got, encodeV1(want)) {
		t.Fatalf("with a version %d server: %d bytes starting %q, want format 1", oldest, len(got), got[:min(len(got), 30)])
	}
	oldest = CommandVersion
	got := persist()
	if !bytes.HasPrefix(got, []byte(snapshotHeader)) {
		t.Fatalf("every server on version %d: starts %q, want format 2", oldest, got[:min(len(got), 30)])
	}
	restored(t, got, want, n)
}

// TestSnapshot_EmptyRestores: a snapshot of an empty state restores an
// empty state.
func TestSnapshot_EmptyRestores(t *testing.T) {
	st, err := openState(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	restored(t, persisted(t, st), nil, 0)
	restored(t, encodeV1(nil), nil, 0)
}

// TestSnapshot_BadSnapshotLeavesStateUntouched: a truncated, corrupt or
// disordered snapshot fails to restore, and the live state is what it was,
// on disk too (CURRENT still names it; no half-built directory remains).
func TestSnapshot_BadSnapshotLeavesStateUntouched(t *testing.T) {
	src := filledState(t, 2000)
	records := dump(t, src.db)
	good := persisted(t, src)
	v1 := encodeV1(records)
	flipped := slices.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	swapped := slices.Clone(records)
	swapped[10], swapped[11] = swapped[11], swapped[10]
	dup := slices.Clone(records)
	dup[11] = dup[10]
	bad := map[string][]byte{
		"v2 truncated":           good[:len(good)/2],
		"v2 without its end":     good[:len(good)-4],
		"v2 header only":         good[:len(snapshotHeader)],
		"v2 corrupt":             flipped,
		"v1 cut within a record": v1[:len(v1)-3],
		"v1 keys out of order":   encodeV1(swapped),
		"v1 key repeated":        encodeV1(dup),
		"v2 without trailer":     encodeV2(t, records, nil),
		"v2 trailer cut":         encodeV2(t, records, trailer(len(records))[:7]),
		"v2 count too high":      encodeV2(t, records, trailer(len(records)+1)),
		"v2 count too low":       encodeV2(t, records, trailer(len(records)-1)),
		"v2 data after trailer":  encodeV2(t, records, append(trailer(len(records)), 0)),
		"v2 record cut":          encodeV2(t, records[:1], []byte{5, 0, 0, 0, 'a'}),
		"unknown version":        append([]byte("garret-catalog-snapshot 9\n"), good[len(snapshotHeader):]...),
		"not a snapshot":         []byte("hello"),
	}

	live := filledState(t, 500)
	want := dump(t, live.db)
	current, _ := os.ReadFile(filepath.Join(live.dir, "CURRENT"))
	for name, snap := range bad {
		if _, err := live.restore(bytes.NewReader(snap)); err == nil {
			t.Errorf("%s: restored", name)
			continue
		} else {
			t.Logf("%s: %v", name, err)
		}
		if got := dump(t, live.db); !slices.Equal(got, want) {
			t.Fatalf("%s: the live state changed (%d keys, want %d)", name, len(got), len(want))
		}
		if b, _ := os.ReadFile(filepath.Join(live.dir, "CURRENT")); !bytes.Equal(b, current) {
			t.Fatalf("%s: CURRENT is %q, was %q", name, b, current)
		}
		entries, _ := os.ReadDir(live.dir)
		if len(entries) != 1 || entries[0].Name() != "state" {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Fatalf("%s: %s holds %v", name, live.dir, names)
		}
	}
	// A good snapshot still replaces it.
	if idx, err := live.restore(bytes.NewReader(good)); err != nil || idx != 2000 {
		t.Fatalf("restore after failures: %d, %v", idx, err)
	}
	if got := dump(t, live.db); !slices.Equal(got, records) {
		t.Fatalf("restored %d keys, want %d", len(got), len(records))
	}
}

// TestSnapshot_OversizedRecord: a record length over maxSnapshotRecord is
// refused before anything of that size is allocated.
func TestSnapshot_OversizedRecord(t *testing.T) {
	for _, n := range []uint32{maxSnapshotRecord + 1, 1<<32 - 1} {
		for _, keyToo := range []bool{true, false} {
			var b []byte
			if !keyToo {
				b = binary.LittleEndian.AppendUint32(b, 3)
				b = append(b, "key"...)
			}
			b = binary.LittleEndian.AppendUint32(b, n)
			b = append(b, make([]byte, 1024)...)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, err := (&recordReader{r: bytes.NewReader(b)}).next()
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), "over the limit of 67108864") {
				t.Fatalf("length %d: %v", n, err)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
				t.Fatalf("length %d: allocated %d bytes", n, d)
			}
		}
	}
	// Through restore, in both versions: an error naming the limit.
	st, err := openState(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	v1 := binary.LittleEndian.AppendUint32([]byte(snapshotHeaderV1), 1<<31)
	if _, err := st.restore(bytes.NewReader(v1)); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("v1: %v", err)
	}
	var buf bytes.Buffer
	buf.WriteString(snapshotHeader)
	enc, _ := zstdEncoder(&buf)
	_, _ = enc.Write(binary.LittleEndian.AppendUint32(nil, 1<<31))
	_ = enc.Close()
	if _, err := st.restore(&buf); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("v2: %v", err)
	}
}
