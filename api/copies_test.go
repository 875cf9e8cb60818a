package api

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/narinfo"
)

// fakeCopies records the manifests a push waited for, and fails while
// refuse is set.
type fakeCopies struct {
	mu     sync.Mutex
	asked  []chunkstore.ManifestID
	refuse bool
}

func (f *fakeCopies) Start(chunkstore.ManifestID) {}

func (f *fakeCopies) Ensure(_ context.Context, id chunkstore.ManifestID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, id)
	if f.refuse {
		return errors.New("node us-1: unreachable")
	}
	return nil
}

// TestPush_WaitsForCopies: every kind of push (upload-path, Nix's NAR and
// narinfo PUTs, an auxiliary file) waits for its copies before it commits;
// a push that cannot get them is refused with 503 and commits nothing, and
// Nix's staged NAR survives for the retry.
func TestPush_WaitsForCopies(t *testing.T) {
	copies := &fakeCopies{refuse: true}
	e := newTestEnvDeps(t, DefaultConfig(), Deps{Copies: copies})
	e.createCache("main", false)

	nar := fileNAR("copied before it is acknowledged")
	info := uploadInfo("main", "copies", nar)
	st, b := e.upload(e.root, info, nar)
	if st != 503 || !strings.Contains(string(b), "NotEnoughCopies") || !strings.Contains(string(b), "us-1") {
		t.Fatalf("upload-path without copies: %d %s", st, b)
	}
	if got := e.missing("main", info.StorePathHash); len(got) != 1 {
		t.Fatalf("a refused push committed: missing %v", got)
	}
	copies.refuse = false
	if st, b := e.upload(e.root, info, nar); st != 200 {
		t.Fatalf("upload-path: %d %s", st, b)
	}
	if len(copies.asked) != 2 || copies.asked[0] != copies.asked[1] {
		t.Fatalf("Ensure asked for %v; want the NAR's manifest twice", copies.asked)
	}

	// Nix: the NAR PUT stages, the narinfo PUT waits for copies.
	nar2 := dirNAR("a", "b")
	h, p := testPath("copies-nix")
	url := "nar/" + strings.Repeat("2", 52) + ".nar"
	if st, b := e.do("PUT", "/main/"+url, e.root, bytes.NewReader(nar2), nil); st != 200 {
		t.Fatalf("PUT nar: %d %s", st, b)
	}
	ni := narinfo.NarInfo{StorePath: p, URL: url, Compression: "none", NarHash: narHashOf(nar2), NarSize: uint64(len(nar2)), References: []string{}}
	copies.refuse = true
	if st, b := e.do("PUT", "/main/"+h+".narinfo", e.root, strings.NewReader(ni.String()), nil); st != 503 {
		t.Fatalf("PUT narinfo without copies: %d %s", st, b)
	}
	if st, _ := e.do("GET", "/main/"+h+".narinfo", e.root, nil, nil); st != 404 {
		t.Fatalf("a refused narinfo PUT committed: GET %d", st)
	}
	copies.refuse = false
	if st, b := e.do("PUT", "/main/"+h+".narinfo", e.root, strings.NewReader(ni.String()), nil); st != 200 {
		t.Fatalf("PUT narinfo again (the NAR must still be staged): %d %s", st, b)
	}

	// An auxiliary file.
	n := len(copies.asked)
	copies.refuse = true
	if st, _ := e.do("PUT", "/main/"+h+".ls", e.root, strings.NewReader("{}"), nil); st != 503 {
		t.Fatalf("PUT .ls without copies: %d", st)
	}
	if len(copies.asked) != n+1 {
		t.Fatal("an auxiliary file did not wait for copies")
	}
}
