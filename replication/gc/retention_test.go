package gc

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/catalog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeCatalog is a RetentionCatalog over a map, recording the expiries.
type fakeCatalog struct {
	mu       sync.Mutex
	caches   []catalog.Cache
	objects  map[nixid.CacheName]map[nixid.StorePathHash]catalog.Object
	commands []int // objects per ExpireObjects call
}

func (f *fakeCatalog) Caches() ([]catalog.Cache, error) { return f.caches, nil }

func (f *fakeCatalog) ForEachObject(cache nixid.CacheName, fn func(catalog.Object) error) error {
	f.mu.Lock()
	var hs []string
	for h := range f.objects[cache] {
		hs = append(hs, string(h))
	}
	f.mu.Unlock()
	sort.Strings(hs)
	for _, h := range hs {
		f.mu.Lock()
		o := f.objects[cache][nixid.StorePathHash(h)]
		f.mu.Unlock()
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeCatalog) ExpireObjects(_ context.Context, cache nixid.CacheName, before time.Time, hs []nixid.StorePathHash) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(hs) > catalog.MaxObjectsPerCommand {
		return 0, fmt.Errorf("%d objects in one command", len(hs))
	}
	f.commands = append(f.commands, len(hs))
	n := 0
	for _, h := range hs {
		if o, ok := f.objects[cache][h]; ok && o.LastUsed().Before(before) {
			delete(f.objects[cache], h)
			n++
		}
	}
	return n, nil
}

func hashOf(i int) nixid.StorePathHash { return nixid.StorePathHash(fmt.Sprintf("%032d", i)) }

// TestRetention_PagesAndPeriods: a cache larger than one command is
// expired in several commands of at most MaxObjectsPerCommand; only
// objects older than their cache's period go; a cache with period 0, and
// caches without their own when the default is 0, are left alone.
func TestRetention_PagesAndPeriods(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	day, zero := uint32(86400), uint32(0)
	f := &fakeCatalog{caches: []catalog.Cache{{Name: "big"}, {Name: "daily", RetentionPeriod: &day}, {Name: "keep", RetentionPeriod: &zero}},
		objects: map[nixid.CacheName]map[nixid.StorePathHash]catalog.Object{"big": {}, "daily": {}, "keep": {}}}
	old := now.Add(-30 * 24 * time.Hour)
	n := catalog.MaxObjectsPerCommand*2 + 10
	for i := range n {
		o := catalog.Object{StorePathHash: hashOf(i), CreatedAt: old}
		if i%2 == 1 {
			o.AccessedAt = now.Add(-time.Hour) // downloaded an hour ago
		}
		f.objects["big"][o.StorePathHash] = o
	}
	f.objects["daily"][hashOf(1)] = catalog.Object{StorePathHash: hashOf(1), CreatedAt: now.Add(-25 * time.Hour)}
	f.objects["daily"][hashOf(2)] = catalog.Object{StorePathHash: hashOf(2), CreatedAt: now.Add(-23 * time.Hour)}
	f.objects["keep"][hashOf(1)] = catalog.Object{StorePathHash: hashOf(1), CreatedAt: old}

	r := &Retention{Catalog: f, Now: func() time.Time { return now }}
	if got, err := r.Expire(context.Background()); err != nil || got != 1 {
		t.Fatalf("without a default: %d %v, want only daily's old object", got, err)
	}
	r.Default = 7 * 24 * time.Hour
	got, err := r.Expire(context.Background())
	if err != nil || got != n/2 {
		t.Fatalf("expired %d (%v), want %d", got, err, n/2)
	}
	if len(f.objects["big"]) != n/2 || len(f.objects["daily"]) != 1 || len(f.objects["keep"]) != 1 {
		t.Fatalf("left: big %d, daily %d, keep %d", len(f.objects["big"]), len(f.objects["daily"]), len(f.objects["keep"]))
	}
	if len(f.commands) < 3 {
		t.Fatalf("%d commands for %d expiries: %v", len(f.commands), n/2, f.commands)
	}
}

// TestAccesses_BoundedAndKeptOnFailure: downloads are folded per cache in
// commands of at most MaxObjectsPerCommand; what the catalog refuses stays
// pending for the next flush; past the bound, downloads are dropped and
// counted, never grown without limit.
func TestAccesses_BoundedAndKeptOnFailure(t *testing.T) {
	var mu sync.Mutex
	touched := map[nixid.CacheName]int{}
	var fail error
	a := &Accesses{Max: catalog.MaxObjectsPerCommand + 100, Touch: func(_ context.Context, c nixid.CacheName, at time.Time, hs []nixid.StorePathHash) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail != nil {
			return 0, fail
		}
		if len(hs) > catalog.MaxObjectsPerCommand || at.IsZero() {
			return 0, errors.New("bad command")
		}
		touched[c] += len(hs)
		return len(hs), nil
	}}
	col := &Collector{Accesses: a}
	reg := prometheus.NewRegistry()
	if err := col.Register(reg); err != nil {
		t.Fatal(err)
	}
	var never time.Time
	r := &Accesses{PeriodOf: func(c nixid.CacheName) time.Duration {
		return map[nixid.CacheName]time.Duration{"short": 24 * time.Minute}[c]
	}}
	r.Record("a", hashOf(1), time.Now().Add(-2*time.Minute))      // used two minutes ago, no short period: not again
	r.Record("short", hashOf(2), time.Now().Add(-30*time.Second)) // within a 24th of its period: not again
	if r.Pending() != 0 {
		t.Fatalf("%d recent downloads recorded", r.Pending())
	}
	r.Record("short", hashOf(3), time.Now().Add(-2*time.Minute)) // past a 24th of 24 minutes
	r.Record("a", hashOf(4), never)
	if r.Pending() != 2 {
		t.Fatalf("%d downloads recorded, want the old one and the one past its short period's resolution", r.Pending())
	}
	for i := range catalog.MaxObjectsPerCommand + 50 {
		a.Record("a", hashOf(i), never)
		a.Record("a", hashOf(i), never) // twice: one entry
	}
	for i := range 100 {
		a.Record("b", hashOf(i), never)
	}
	if p := a.Pending(); p != a.Max {
		t.Fatalf("pending %d, want the bound %d", p, a.Max)
	}
	if d := testutil.ToFloat64(col.metrics.drop); d != 50 {
		t.Fatalf("dropped %v, want 50", d)
	}
	fail = errors.New("no leader")
	if err := a.Flush(context.Background()); err == nil || a.Pending() != a.Max {
		t.Fatalf("a failed flush: %v, pending %d", err, a.Pending())
	}
	fail = nil
	if err := a.Flush(context.Background()); err != nil || a.Pending() != 0 {
		t.Fatalf("flush: %v, pending %d", err, a.Pending())
	}
	if touched["a"]+touched["b"] != a.Max || touched["b"] == 0 {
		t.Fatalf("touched %v", touched)
	}
	if v := testutil.ToFloat64(col.metrics.pending); v != 0 {
		t.Fatalf("pending gauge %v after the flush", v)
	}
}

// TestCollector_MetricsAndHistory: a pass is counted by result, what it
// freed is added up, and the history keeps the newest passes first.
func TestCollector_MetricsAndHistory(t *testing.T) {
	s := openStore(t)
	put(t, s, []byte(strings.Repeat("garbage ", 1<<14)))
	stale := errors.New("no leader known")
	current := stale
	hist := &History{}
	col := &Collector{History: hist, Sweeper: &Sweeper{Store: s, Manifests: func(func(chunkstore.ManifestID) error) error { return nil },
		Grace: time.Nanosecond, Current: func(context.Context) error { return current }}}
	reg := prometheus.NewRegistry()
	if err := col.Register(reg); err != nil {
		t.Fatal(err)
	}
	if r := col.Pass(context.Background()); !r.Skipped || r.Err == "" {
		t.Fatalf("with a stale catalog: %+v", r)
	}
	if _, err := col.CollectNow(context.Background()); err == nil {
		t.Fatal("CollectNow with a stale catalog succeeded")
	}
	current = nil
	res, err := col.CollectNow(context.Background())
	if err != nil || res.ManifestsDeleted != 1 || res.ChunksDeleted == 0 {
		t.Fatalf("pass: %+v %v", res, err)
	}
	if got := testutil.ToFloat64(col.metrics.runs.WithLabelValues("skipped")); got != 2 {
		t.Fatalf("skipped passes %v", got)
	}
	if got := testutil.ToFloat64(col.metrics.runs.WithLabelValues("ok")); got != 1 {
		t.Fatalf("ok passes %v", got)
	}
	if got := testutil.ToFloat64(col.metrics.bytes); got != float64(res.BytesFreed) || got == 0 {
		t.Fatalf("bytes freed %v, want %d", got, res.BytesFreed)
	}
	runs := hist.Runs()
	if len(runs) != 3 || runs[0].Skipped || !runs[2].Skipped {
		t.Fatalf("history: %+v", runs)
	}
	for range historyLen + 5 {
		hist.Add(Run{})
	}
	if len(hist.Runs()) != historyLen {
		t.Fatalf("history keeps %d runs", len(hist.Runs()))
	}
}
