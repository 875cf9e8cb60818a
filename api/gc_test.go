package api

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/internal/nixid"
)

// fakeDownloads records what Record was told.
type fakeDownloads struct {
	mu   sync.Mutex
	seen []string
}

func (f *fakeDownloads) Record(c nixid.CacheName, h nixid.StorePathHash, _ time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, string(c)+"/"+string(h))
}

func (f *fakeDownloads) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

type fakeCollector struct {
	calls int
	err   error
}

func (f *fakeCollector) CollectNow(context.Context) (v1.ClusterGCResponse, error) {
	f.calls++
	if f.err != nil {
		return v1.ClusterGCResponse{}, f.err
	}
	return v1.ClusterGCResponse{Node: "eu-1", ObjectsExpired: 3, ChunksDeleted: 9, BytesFreed: 900}, nil
}

// TestDownloads_Recorded: a NAR GET records its object for retention; a
// HEAD, a narinfo GET, a refused or missing download do not (Attic bumps
// last_accessed_at on NAR downloads only).
func TestDownloads_Recorded(t *testing.T) {
	fd := &fakeDownloads{}
	e := newTestEnvDeps(t, DefaultConfig(), Deps{Downloads: fd})
	e.createCache("pub", true)
	e.createCache("priv", false)
	nar := fileNAR("retained")
	for _, cache := range []string{"pub", "priv"} {
		if st, b := e.upload(e.root, uploadInfo(cache, "kept", nar), nar); st != 200 {
			t.Fatalf("upload: %d %s", st, b)
		}
	}
	h, _ := testPath("kept")
	for _, c := range []struct {
		method, path     string
		status, recorded int
	}{
		{"HEAD", "/pub/nar/" + h + ".nar", 200, 0},
		{"GET", "/pub/" + h + ".narinfo", 200, 0},
		{"GET", "/priv/nar/" + h + ".nar", 401, 0},
		{"GET", "/pub/nar/00000000000000000000000000000000.nar", 404, 0},
		{"GET", "/pub/nar/" + h + ".nar", 200, 1},
	} {
		if st, b := e.do(c.method, c.path, "", nil, nil); st != c.status {
			t.Fatalf("%s %s: %d %s", c.method, c.path, st, b)
		}
		if got := fd.count(); got != c.recorded {
			t.Fatalf("after %s %s: %d downloads recorded, want %d", c.method, c.path, got, c.recorded)
		}
	}
	if fd.seen[0] != "pub/"+h {
		t.Fatalf("recorded %v", fd.seen)
	}
}

// TestClusterGC: the endpoint needs cluster-admin, answers the pass, and is
// a 503 naming the cause when the pass did not complete.
func TestClusterGC(t *testing.T) {
	fc := &fakeCollector{}
	e := newTestEnvDeps(t, DefaultConfig(), Deps{Collector: fc})
	st, b := e.do("POST", "/_api/v1/cluster/gc", "", nil, nil)
	errorBody(t, "anonymous", st, b, 401, "Unauthorized", "")
	st, b = e.do("POST", "/_api/v1/cluster/gc", e.root, nil, nil)
	errorBody(t, "without cluster-admin", st, b, 403, "AccessError", "cluster-admin")
	if fc.calls != 0 {
		t.Fatal("a refused request collected")
	}
	admin := e.mint(token.MintOptions{Subject: "a", Validity: time.Hour, ClusterAdmin: true})
	st, b = e.do("POST", "/_api/v1/cluster/gc", admin, nil, nil)
	var res v1.ClusterGCResponse
	if st != 200 || json.Unmarshal(b, &res) != nil || res.ObjectsExpired != 3 || res.BytesFreed != 900 {
		t.Fatalf("gc: %d %s", st, b)
	}
	fc.err = errors.New("gc: sweep skipped: the catalog is not known to be current")
	st, b = e.do("POST", "/_api/v1/cluster/gc", admin, nil, nil)
	errorBody(t, "failed pass", st, b, 503, "GarbageCollectionFailed", "not known to be current")

	e2 := newTestEnv(t)
	st, b = e2.do("POST", "/_api/v1/cluster/gc", e2.mint(token.MintOptions{Subject: "a", Validity: time.Hour, ClusterAdmin: true}), nil, nil)
	if st != 404 {
		t.Fatalf("without a collector: %d %s", st, b)
	}
}
