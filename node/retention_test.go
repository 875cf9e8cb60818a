package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/internal/eventually"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/catalog"
)

// TestRetention_DownloadsKeepObjects: with a default retention period of an
// hour, a running node's pass expires what was neither pushed nor
// downloaded within it. A NAR downloaded over HTTP reaches the catalog as an
// access time (folded in a batch) and keeps its object; a cache's own
// period overrides the default (0 keeps objects for ever); the chunks of
// expired objects are swept in the same pass; a stopped node's collector
// (garbage-collector-once) runs retention too.
func TestRetention_DownloadsKeepObjects(t *testing.T) {
	dataDir := t.TempDir()
	cfg := loadTestConfig(t, dataDir, "127.0.0.1:0", "[garbage-collection]\ninterval = \"0\"\ndefault-retention-period = \"1 hour\"")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := New(Config{Server: cfg, Logger: quiet, FastTimings: true, SweepGrace: time.Nanosecond, AccessFlush: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cat := n.Catalog()
	forever, threeHours := uint32(0), uint32(3*3600)
	for _, c := range []catalog.Cache{{Name: "c", IsPublic: true}, {Name: "keep", RetentionPeriod: &forever}, {Name: "long", RetentionPeriod: &threeHours}} {
		if err := cat.CreateCache(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	h := func(c byte) nixid.StorePathHash { return nixid.StorePathHash(strings.Repeat(string(c), 32)) }
	old := time.Now().Add(-2 * time.Hour)
	put := func(cache nixid.CacheName, hash nixid.StorePathHash, created time.Time) {
		t.Helper()
		id := putPath(t, n, cache, hash, 64<<10)
		o, err := cat.Object(cache, hash)
		if err != nil {
			t.Fatal(err)
		}
		o.CreatedAt, o.Manifest = created, id
		if err := cat.PutObject(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	put("c", h('0'), old)        // unused for 2 h: expires
	put("c", h('1'), old)        // downloaded below: stays
	put("c", h('2'), time.Now()) // pushed just now: stays
	put("keep", h('3'), old)     // retention 0 in its cache: stays
	put("long", h('4'), old)     // its cache keeps 3 h: stays
	put("c", h('5'), old)        // unused: expires, but offline
	resp, err := http.Get(n.URL() + "/c/nar/" + string(h('1')) + ".nar")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("NAR download: %s", resp.Status)
	}
	eventually.Within(t, 10*time.Second, "the download reaches the catalog", func() bool {
		o, err := cat.Object("c", h('1'))
		return err == nil && time.Since(o.AccessedAt) < time.Minute
	})
	if o, _ := cat.Object("c", h('2')); !o.AccessedAt.IsZero() {
		t.Fatal("an object nobody downloaded has an access time")
	}

	// h('5') is moved past the period only for the offline pass: first the
	// running node's pass, with it still fresh.
	o5, _ := cat.Object("c", h('5'))
	o5.CreatedAt = time.Now()
	if err := cat.PutObject(ctx, o5); err != nil {
		t.Fatal(err)
	}
	before, _ := n.Store().Stats()
	res, err := n.collector.CollectNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.ObjectsExpired != 1 || res.ManifestsDeleted != 1 || res.ChunksDeleted == 0 {
		t.Fatalf("pass: %+v; want h0 expired and its chunks swept", res)
	}
	after, _ := n.Store().Stats()
	if after.StoredBytes >= before.StoredBytes {
		t.Fatalf("stored bytes %d → %d", before.StoredBytes, after.StoredBytes)
	}
	for cache, hs := range map[nixid.CacheName][]byte{"c": []byte("125"), "keep": []byte("3"), "long": []byte("4")} {
		for _, c := range hs {
			if _, err := cat.Object(cache, h(c)); err != nil {
				t.Errorf("%s/%c after the pass: %v", cache, c, err)
			}
		}
	}
	if _, err := cat.Object("c", h('0')); err == nil {
		t.Error("the unused object is still there")
	}
	runs := n.gcRuns.Runs()
	if len(runs) != 1 || runs[0].ObjectsExpired != 1 {
		t.Fatalf("history: %+v", runs)
	}

	o5.CreatedAt = old
	if err := cat.PutObject(ctx, o5); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := OpenCollector(Config{Server: cfg, Logger: quiet, SweepGrace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	r := c.Collect(ctx)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if r.Err != "" || r.ObjectsExpired != 1 || r.ManifestsDeleted != 1 {
		t.Fatalf("offline pass: %+v; want h5 expired", r)
	}
	n, err = start(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(ctx)
	if _, err := n.Catalog().Object("c", h('5')); err == nil {
		t.Fatal("the offline expiry did not reach the node's catalog")
	}
	if _, err := n.Catalog().Object("c", h('1')); err != nil {
		t.Fatalf("the downloaded object after the offline pass: %v", err)
	}
}

// TestCluster_RetentionCountsDownloadsOnAnyNode: a NAR downloaded from a
// follower keeps its object, once the follower folds its downloads into
// the catalog; only the leader's pass expires objects, once.
func TestCluster_RetentionCountsDownloadsOnAnyNode(t *testing.T) {
	first := startCluster(t, clusterConfig(t, "eu-1", "eu", nil), time.Minute)
	second := startCluster(t, clusterConfig(t, "us-1", "us", []string{first.cluster.GossipAddr()}), time.Minute)
	eventually.True(t, "two servers", func() bool { s, err := first.Catalog().Servers(); return err == nil && len(s) == 2 })
	ctx := context.Background()
	hour := uint32(3600)
	eventually.True(t, "the cache", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := first.Catalog().CreateCache(cctx, catalog.Cache{Name: "c", IsPublic: true, RetentionPeriod: &hour})
		return err == nil || errors.Is(err, catalog.ErrCacheExists)
	})
	h := func(c byte) nixid.StorePathHash { return nixid.StorePathHash(strings.Repeat(string(c), 32)) }
	old := time.Now().Add(-2 * time.Hour)
	for _, c := range []byte("01") {
		id := putPath(t, first, "c", h(c), 64<<10)
		o, _ := first.Catalog().Object("c", h(c))
		o.CreatedAt, o.Manifest = old, id
		if err := first.Catalog().PutObject(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	eventually.True(t, "the follower's catalog", func() bool { _, err := second.Catalog().Object("c", h('1')); return err == nil })
	resp, err := http.Get(second.URL() + "/c/nar/" + string(h('1')) + ".nar")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("download from the follower: %s", resp.Status)
	}
	if err := second.collector.Accesses.Flush(ctx); err != nil {
		t.Fatalf("the follower's flush: %v", err)
	}
	leader, follower := first, second
	if second.Catalog().IsLeader() {
		leader, follower = second, first
	}
	if res, err := follower.collector.CollectNow(ctx); err != nil || res.ObjectsExpired != 0 {
		t.Fatalf("the follower's pass: %+v %v; retention is the leader's", res, err)
	}
	res, err := leader.collector.CollectNow(ctx)
	if err != nil || res.ObjectsExpired != 1 {
		t.Fatalf("the leader's pass: %+v %v, want one object expired", res, err)
	}
	eventually.True(t, "the expiry on both nodes", func() bool {
		_, gone := second.Catalog().Object("c", h('0'))
		_, kept := second.Catalog().Object("c", h('1'))
		return errors.Is(gone, catalog.ErrNoSuchObject) && kept == nil
	})
}
