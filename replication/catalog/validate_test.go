package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/garret-cache/garret/internal/logbridge"
)

// queued is a proposal for cmd as proposeLocal makes it.
func queued(t testing.TB, cmd command) proposal {
	t.Helper()
	raw, err := cmd.validate()
	if err != nil {
		t.Fatal(err)
	}
	return proposal{raw: raw, done: make(chan result, 1)}
}

// memFSM is a fresh FSM on an in-memory pebble.
func memFSM(t testing.TB) *fsm {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Logger: logbridge.Pebble(quiet)})
	if err != nil {
		t.Fatal(err)
	}
	st := &state{db: db}
	t.Cleanup(func() { _ = st.close() })
	return &fsm{st: st, log: quiet}
}

// applyEntry applies data as the next log entry and returns the results.
func applyEntry(f *fsm, data []byte) []result {
	idx := f.applied.Load() + 1
	res, _ := f.Apply(&raft.Log{Type: raft.LogCommand, Index: idx, Data: data}).(*batchResult)
	if res == nil {
		return nil
	}
	return res.results
}

func TestFSM_SkipsWhatItCannotApply(t *testing.T) {
	f := memFSM(t)
	if r := applyEntry(f, []byte("\x01"+`[{"t":1,"cache":{"name":"a"}}]`)); len(r) != 1 || r[0].err != nil {
		t.Fatalf("create: %+v", r)
	}
	for name, entry := range map[string]string{
		"put-object without an object": "\x01" + `[{"t":4}]`,
		"unknown type":                 "\x01" + `[{"t":99,"future":{"x":1}}]`,
		"type out of range":            "\x01" + `[{"t":300}]`,
		"null command":                 "\x01" + `[null]`,
		"bad cache name":               "\x01" + `[{"t":1,"cache":{"name":"../x"}}]`,
		"bad hash":                     "\x01" + `[{"t":5,"name":"a","hashes":["nope"]}]`,
		"configure without a patch":    "\x01" + `[{"t":2,"name":"a"}]`,
		"file without a name":          "\x01" + `[{"t":6,"file":{"cache":"a"}}]`,
		"newer entry version":          "\x02" + `[{"t":1,"cache":{"name":"b"}}]`,
		"not an array":                 "\x01" + `{"t":1}`,
		"empty":                        "",
	} {
		before := f.applied.Load()
		for _, r := range applyEntry(f, []byte(entry)) {
			if !errors.Is(r.err, ErrInvalidCommand) {
				t.Errorf("%s: result %v, want ErrInvalidCommand", name, r.err)
			}
		}
		if f.applied.Load() != before+1 {
			t.Errorf("%s: applied index %d, want %d", name, f.applied.Load(), before+1)
		}
	}
	// A bad command does not take its batch-mates down with it.
	r := applyEntry(f, []byte("\x01"+`[{"t":4},{"t":1,"cache":{"name":"c"}},{"t":7,"jti":""}]`))
	if len(r) != 3 || !errors.Is(r[0].err, ErrInvalidCommand) || r[1].err != nil || !errors.Is(r[2].err, ErrInvalidCommand) {
		t.Fatalf("mixed entry: %+v", r)
	}
	if ok, err := f.st.get(cacheKey("c"), nil); !ok || err != nil {
		t.Fatalf("the valid command of a mixed entry was not applied: %v %v", ok, err)
	}
	if ok, _ := f.st.get(cacheKey("b"), nil); ok {
		t.Fatal("an entry of an unknown version was applied")
	}
}

func TestCatalog_InvalidCommandsNeverReachTheLog(t *testing.T) {
	n := startNode(t, t.TempDir(), true)
	waitLeader(t, n.cat)
	ctx := context.Background()
	if err := n.cat.CreateCache(ctx, Cache{Name: "v"}); err != nil {
		t.Fatal(err)
	}
	long := func(n int) string { return strings.Repeat("x", n) }
	big := object("v", 1)
	for i := range 9000 {
		big.References = append(big.References, long(1000)+string(rune('a'+i%26)))
	}
	for name, cmd := range map[string]command{
		"no object":        cmdOf(&putObject{}),
		"unknown type":     {Type: 99},
		"bad cache name":   cmdOf(&createCache{Cache: &Cache{Name: "a/b"}}),
		"long signature":   cmdOf(&putObject{Object: &Object{Cache: "v", StorePathHash: hashOf(2), Sigs: []string{long(MaxSigBytes + 1)}}}),
		"too many sigs":    cmdOf(&putObject{Object: &Object{Cache: "v", StorePathHash: hashOf(2), Sigs: make([]string, MaxSigs+1)}}),
		"long system":      cmdOf(&putObject{Object: &Object{Cache: "v", StorePathHash: hashOf(2), System: long(MaxSystemBytes + 1)}}),
		"long ca":          cmdOf(&putObject{Object: &Object{Cache: "v", StorePathHash: hashOf(2), CA: long(MaxCABytes + 1)}}),
		"long deriver":     cmdOf(&putObject{Object: &Object{Cache: "v", StorePathHash: hashOf(2), Deriver: long(MaxDeriverBytes + 1)}}),
		"long reference":   cmdOf(&putObject{Object: &Object{Cache: "v", StorePathHash: hashOf(2), References: []string{long(MaxReferenceBytes + 1)}}}),
		"too many refs":    cmdOf(&putObject{Object: &Object{Cache: "v", StorePathHash: hashOf(2), References: make([]string, MaxReferences+1)}}),
		"oversize command": cmdOf(&putObject{Object: &big}),
		"escaping multiplies": cmdOf(&putObject{Object: &Object{Cache: "v", StorePathHash: hashOf(2), Sigs: []string{strings.Repeat("\x01", MaxSigBytes)}, References: func() (r []string) {
			for range 1500 {
				r = append(r, strings.Repeat("\x01", MaxReferenceBytes))
			}
			return
		}()}}),
	} {
		last := n.cat.raft.LastIndex()
		_, err := n.cat.propose(ctx, cmd)
		if !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("%s: %v, want ErrInvalidCommand", name, err)
		}
		if got := n.cat.raft.LastIndex(); got != last {
			t.Errorf("%s: the log grew from %d to %d", name, last, got)
		}
	}
	// Within the bounds, the same fields go through.
	ok := object("v", 3)
	ok.Sigs, ok.System, ok.CA = []string{"cache.example-1:" + long(88)}, "x86_64-linux", "fixed:r:sha256:"+long(52)
	if err := n.cat.PutObject(ctx, ok); err != nil {
		t.Fatal(err)
	}
}

// TestCatalog_ForwardedGarbage sends what a buggy or newer follower might
// over the forward protocol: the leader answers "invalid" and keeps working,
// and so does a follower (invalid is invalid whoever leads: the sender need
// not look for the leader to send it to again).
func TestCatalog_ForwardedGarbage(t *testing.T) {
	nodes, leader := startCluster(t, 2)
	for _, n := range nodes {
		n.cat.serveOn(n.host)
	}
	var from, to *testNode
	for _, n := range nodes {
		if n.cat == leader {
			to = n
		} else {
			from = n
		}
	}
	var applied atomic.Int64
	to.cat.fsm.applyHook = func(uint64) { applied.Add(1) }
	ctx := context.Background()
	for _, pair := range [][2]*testNode{{from, to}, {to, from}} {
		for _, body := range []string{`{"t":4}`, `{"t":99}`, `{"t":1,"cache":{"name":"../x"}}`, `not json`, `{"t":1,"cache":{"name":"big","keypair":"` + strings.Repeat("k", maxForward) + `"}}`} {
			s, err := pair[0].host.NewStream(ctx, pair[1].id, ForwardProtocol)
			if err != nil {
				t.Fatal(err)
			}
			go func() { _, _ = s.Write([]byte(body)); _ = s.CloseWrite() }()
			var reply forwardReply
			err = json.NewDecoder(s).Decode(&reply)
			_ = s.Close()
			if err != nil || reply.Code != "invalid" {
				t.Errorf("%.40s to %s: reply %+v, %v", body, pair[1].id, reply, err)
			}
		}
	}
	if n := applied.Load(); n != 0 {
		t.Errorf("%d entries applied from garbage", n)
	}
	// A follower's own invalid write is refused with the reason, unsent.
	if _, err := from.cat.propose(ctx, cmdOf(&putObject{})); !errors.Is(err, ErrInvalidCommand) {
		t.Fatalf("follower's invalid write: %v", err)
	}
	// The cluster still takes writes (the 8 MiB body may have cost the
	// short test heartbeats an election).
	eventually(t, "a forwarded write", func() bool {
		err := from.cat.CreateCache(ctx, Cache{Name: "still-works"})
		return err == nil || errors.Is(err, ErrCacheExists)
	})
}

// TestCatalog_MalformedEntryReplayed puts entries that bypass validation
// into the log (as a newer node's would arrive), then replays the whole log
// into an empty FSM after a restart.
func TestCatalog_MalformedEntryReplayed(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, true)
	waitLeader(t, n.cat)
	ctx := context.Background()
	for _, raw := range []string{"\x01" + `[{"t":4}]`, "\x01" + `[{"t":99}]`, "\x09future"} {
		if err := n.cat.raft.Apply([]byte(raw), 5*time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.cat.CreateCache(ctx, Cache{Name: "after"}); err != nil {
		t.Fatal(err)
	}
	n.stop()
	if err := os.RemoveAll(filepath.Join(dir, "catalog", "fsm")); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, dir, true)
	waitLeader(t, n2.cat)
	eventually(t, "replay", func() bool { _, err := n2.cat.Cache("after"); return err == nil })
	if err := n2.cat.CreateCache(ctx, Cache{Name: "later"}); err != nil {
		t.Fatal(err)
	}
}
