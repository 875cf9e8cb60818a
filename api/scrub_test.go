package api

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/chunkstore"
)

// fakeScrubber records the rates it was asked to scrub at.
type fakeScrubber struct {
	rates []int64
	err   error
}

func (f *fakeScrubber) ScrubNow(_ context.Context, rate int64) (v1.ClusterScrubResponse, error) {
	if f.err != nil {
		return v1.ClusterScrubResponse{}, f.err
	}
	f.rates = append(f.rates, rate)
	return v1.ClusterScrubResponse{Node: "eu-1", Chunks: 7, Bytes: 700, Bad: 1, Repaired: 1, BadChunks: []string{"ab"}}, nil
}

// TestClusterScrub: the scrub endpoint needs cluster-admin, checks its
// rate, answers the counts, and says so when a scrub is already running.
func TestClusterScrub(t *testing.T) {
	fs := &fakeScrubber{}
	e := newTestEnvDeps(t, DefaultConfig(), Deps{Scrubber: fs})
	st, b := e.do("POST", "/_api/v1/cluster/scrub", "", nil, nil)
	errorBody(t, "anonymous", st, b, 401, "Unauthorized", "")
	st, b = e.do("POST", "/_api/v1/cluster/scrub", e.root, nil, nil)
	errorBody(t, "without cluster-admin", st, b, 403, "AccessError", "cluster-admin")
	if len(fs.rates) != 0 {
		t.Fatal("a refused request scrubbed")
	}

	admin := e.mint(token.MintOptions{Subject: "a", Validity: time.Hour, ClusterAdmin: true})
	for _, body := range []string{`{"rate":1000}`, `{"rate":-1}`, `not json`, `{"rate":"fast"}`} {
		st, b := e.do("POST", "/_api/v1/cluster/scrub", admin, strings.NewReader(body), nil)
		errorBody(t, "scrub "+body, st, b, 400, "RequestError", "")
	}
	if len(fs.rates) != 0 {
		t.Fatal("bad input scrubbed")
	}
	for _, c := range []struct {
		body string
		rate int64
	}{{"", 0}, {`{}`, 0}, {`{"rate":67108864}`, 64 << 20}} {
		st, b := e.do("POST", "/_api/v1/cluster/scrub", admin, strings.NewReader(c.body), nil)
		var res v1.ClusterScrubResponse
		if st != 200 || json.Unmarshal(b, &res) != nil || res.Node != "eu-1" || res.Chunks != 7 || res.Bad != 1 || res.Repaired != 1 {
			t.Fatalf("scrub %q: %d %s", c.body, st, b)
		}
		if got := fs.rates[len(fs.rates)-1]; got != c.rate {
			t.Fatalf("scrub %q: rate %d, want %d", c.body, got, c.rate)
		}
	}
	fs.err = chunkstore.ErrScrubRunning
	st, b = e.do("POST", "/_api/v1/cluster/scrub", admin, nil, nil)
	errorBody(t, "while a scrub runs", st, b, 409, "ScrubRunning", "already running")

	// A server without a scrubber has no such route.
	e = newTestEnvDeps(t, DefaultConfig(), Deps{})
	admin = e.mint(token.MintOptions{Subject: "a", Validity: time.Hour, ClusterAdmin: true})
	st, b = e.do("POST", "/_api/v1/cluster/scrub", admin, nil, nil)
	errorBody(t, "no scrubber", st, b, 404, "NotFound", "")
}
