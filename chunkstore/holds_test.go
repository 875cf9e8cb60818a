package chunkstore

import (
	"testing"
	"time"
)

// TestHolds_Lifecycle: a committed hold goes at once, or at the end of a
// running sweep (whose mark may have missed its manifest); an uncommitted
// one goes once the last sweep's grace has passed since its ingest ended.
func TestHolds_Lifecycle(t *testing.T) {
	hs := newHolds()
	a, b, c := ChunkID{1}, ChunkID{2}, ChunkID{3}
	ingest := func(m byte, ids ...ChunkID) *hold {
		h := &hold{}
		for _, id := range ids {
			hs.add(h, id)
		}
		hs.ended(h, ManifestID{m}, time.Now().UnixNano())
		return h
	}
	ingest(1, a, b)
	ingest(2, b)
	if !hs.held(a) || !hs.held(b) {
		t.Fatal("ended ingests hold nothing")
	}
	hs.committed(ManifestID{1})
	if hs.held(a) || !hs.held(b) {
		t.Fatalf("after commit of 1: a held %v, b held %v; want only b (ingest 2)", hs.held(a), hs.held(b))
	}

	hs.sweepStarts(0, int64(1e18)) // a sweep is running, nothing expires
	hs.committed(ManifestID{2})
	if !hs.held(b) {
		t.Fatal("a hold committed during a sweep went before the sweep ended")
	}
	hs.sweepEnds()
	if hs.held(b) {
		t.Fatal("a hold committed during a sweep is still held after it")
	}

	ingest(3, c)
	hs.sweepStarts(0, 1) // grace 1 ns; ingest 3 ended after cutoff 0
	hs.sweepEnds()
	if !hs.held(c) {
		t.Fatal("a sweep whose cutoff precedes the ingest's end released it")
	}
	ingest(4, a) // ingest 3 ended more than 1 ns before: expired now
	if hs.held(c) || !hs.held(a) || len(hs.pending) != 1 {
		t.Fatalf("c held %v, a held %v, %d pending; want only ingest 4", hs.held(c), hs.held(a), len(hs.pending))
	}
}
