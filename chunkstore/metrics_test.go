package chunkstore

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetrics: the store's series are on the registry it was given and
// count what it does.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(t.TempDir())
	cfg.Metrics = reg
	s := openTest(t, cfg)
	res, err := s.Ingest(context.Background(), bytes.NewReader(bytes.Repeat([]byte("metrics "), 1<<16)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Frame(res.Manifest.Chunks[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sweep(context.Background(), func(ManifestID) bool { return false }, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n < 10 {
		t.Fatalf("%d series, %v", n, err)
	}
	want := `
# HELP garret_chunkstore_sweeps_total Sweep passes run.
# TYPE garret_chunkstore_sweeps_total counter
garret_chunkstore_sweeps_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "garret_chunkstore_sweeps_total"); err != nil {
		t.Fatal(err)
	}
	if w := testutil.ToFloat64(s.metrics.framesWritten); w < 1 || testutil.ToFloat64(s.metrics.framesRead) < 1 {
		t.Fatalf("frames written %v, read %v", w, testutil.ToFloat64(s.metrics.framesRead))
	}
	if testutil.ToFloat64(s.metrics.chunksSwept) < 1 {
		t.Fatal("the sweep deleted nothing the metrics saw")
	}
}

// TestMetrics_SegmentGarbage: dead frames left in a sealed segment that is
// still mostly live are reported after the sweep.
func TestMetrics_SegmentGarbage(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Metrics = prometheus.NewRegistry()
	s := openTest(t, cfg)
	_, keep1 := mustIngest(t, s, testData(1, 900<<10))
	_, gone := mustIngest(t, s, testData(2, 100<<10))
	_, keep2 := mustIngest(t, s, testData(3, 3<<20)) // seals the segment holding the dead frames
	live := func(id ManifestID) bool { return id == keep1 || id == keep2 }
	if _, err := s.Sweep(context.Background(), live, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Manifest(gone); err == nil {
		t.Fatal("the dropped NAR's manifest stayed")
	}
	if g := testutil.ToFloat64(s.metrics.garbage); g < 50<<10 {
		t.Fatalf("segment garbage %v bytes, want about the dropped 100 KiB", g)
	}
}
