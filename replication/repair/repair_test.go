package repair

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/eventually"
)

// fakeStore's scrub drops the given chunks.
type fakeStore struct {
	dropped []chunkstore.ChunkID
	scrubs  atomic.Int32
	rate    atomic.Int64
}

func (f *fakeStore) Scrub(_ context.Context, rate int64) (chunkstore.ScrubStats, error) {
	f.scrubs.Add(1)
	f.rate.Store(rate)
	return chunkstore.ScrubStats{Chunks: 10, Bytes: 1000, Bad: int64(len(f.dropped)), Dropped: f.dropped}, nil
}

// fakeCopier has every chunk but those in missing.
type fakeCopier struct {
	mu      sync.Mutex
	missing map[chunkstore.ChunkID]bool
	copied  []chunkstore.ChunkID
}

func (f *fakeCopier) CopyChunks(_ context.Context, ids []chunkstore.ChunkID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if f.missing[id] {
			return errors.New("p2p: no peer has it")
		}
	}
	f.copied = append(f.copied, ids...)
	return nil
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestScrubNow_RepairsWhatPeersHave: dropped chunks are copied from peers;
// one no peer has is counted unrepaired and does not hold back the others.
func TestScrubNow_RepairsWhatPeersHave(t *testing.T) {
	ids := []chunkstore.ChunkID{{1}, {2}, {3}}
	store := &fakeStore{dropped: ids}
	copier := &fakeCopier{missing: map[chunkstore.ChunkID]bool{ids[1]: true}}
	reg := prometheus.NewRegistry()
	s, err := New(Config{Node: "n1", Rate: 5 << 20, Log: quiet(), Metrics: reg}, Deps{Store: store, Copier: copier})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.ScrubNow(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Node != "n1" || res.Chunks != 10 || res.Bad != 3 || res.Repaired != 2 || res.Unrepaired != 1 || len(res.BadChunks) != 3 {
		t.Fatalf("%+v", res)
	}
	if !slices.Contains(copier.copied, ids[0]) || !slices.Contains(copier.copied, ids[2]) {
		t.Fatalf("copied %v", copier.copied)
	}
	if store.rate.Load() != 5<<20 {
		t.Errorf("scrubbed at %d bytes/s, want the configured rate", store.rate.Load())
	}
	if _, err := s.ScrubNow(context.Background(), 1<<20); err != nil || store.rate.Load() != 1<<20 {
		t.Errorf("a rate given on demand: %d %v", store.rate.Load(), err)
	}
	if testutil.ToFloat64(s.repaired) != 4 || testutil.ToFloat64(s.unrepaired) != 2 {
		t.Errorf("repaired %v, unrepaired %v", testutil.ToFloat64(s.repaired), testutil.ToFloat64(s.unrepaired))
	}
}

// TestScrubNow_LoneNode: without peers every dropped chunk is unrepaired.
func TestScrubNow_LoneNode(t *testing.T) {
	s, err := New(Config{Log: quiet()}, Deps{Store: &fakeStore{dropped: []chunkstore.ChunkID{{1}, {2}}}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.ScrubNow(context.Background(), 0)
	if err != nil || res.Bad != 2 || res.Repaired != 0 || res.Unrepaired != 2 {
		t.Fatalf("%+v %v", res, err)
	}
}

// TestRun_StateFile: a node whose last scrub is older than the interval
// scrubs at once and records the time; a fresh data dir starts the clock
// and does not scrub at start.
func TestRun_StateFile(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "scrub.last")
	old := time.Now().Add(-8 * 24 * time.Hour).UTC().Format(time.RFC3339)
	if err := os.WriteFile(state, []byte(old+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store := &fakeStore{}
	s, err := New(Config{Interval: 7 * 24 * time.Hour, StateFile: state, Log: quiet()}, Deps{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Run(ctx)
		close(done)
	}()
	eventually.True(t, "the overdue scrub runs", func() bool { return store.scrubs.Load() == 1 })
	eventually.True(t, "its time is recorded", func() bool {
		b, _ := os.ReadFile(state)
		return len(b) > 0 && string(b) != old+"\n"
	})
	cancel()
	<-done
	if n := store.scrubs.Load(); n != 1 {
		t.Fatalf("%d scrubs, want 1 (the next is a week away)", n)
	}

	fresh := filepath.Join(dir, "fresh.last")
	store = &fakeStore{}
	s, err = New(Config{Interval: time.Hour, StateFile: fresh, Log: quiet()}, Deps{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("a fresh node did not start its scrub clock: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	s.Run(ctx)
	if n := store.scrubs.Load(); n != 0 {
		t.Fatalf("a fresh node scrubbed %d times at start", n)
	}
}

// TestNew_BadConfig: negative settings and a missing store are refused.
func TestNew_BadConfig(t *testing.T) {
	for name, c := range map[string]struct {
		cfg  Config
		deps Deps
	}{
		"no store":          {Config{}, Deps{}},
		"negative interval": {Config{Interval: -time.Second}, Deps{Store: &fakeStore{}}},
		"negative rate":     {Config{Rate: -1}, Deps{Store: &fakeStore{}}},
	} {
		if _, err := New(c.cfg, c.deps); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
