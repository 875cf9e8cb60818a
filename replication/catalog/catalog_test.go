package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/p2p"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testNode is a catalog with its own libp2p host and data dir.
type testNode struct {
	dir  string
	host host.Host
	id   peer.ID
	cat  *Catalog
}

func newHost(t *testing.T, dir string) (host.Host, peer.ID) {
	t.Helper()
	key, id, err := p2p.LoadOrCreateIdentity(filepath.Join(dir, "p2p.key"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := p2p.NewHost(p2p.Config{PrivateKey: key, PSK: bytes.Repeat([]byte{0x5a}, 32)}) // one private network for the test's nodes
	if err != nil {
		t.Fatal(err)
	}
	return h, id
}

func startNode(t *testing.T, dir string, bootstrap bool) *testNode {
	t.Helper()
	return startNodeWith(t, dir, bootstrap, Deps{})
}

// startNodeWith is startNode with extra dependencies (the transport and log
// are the test's own).
func startNodeWith(t *testing.T, dir string, bootstrap bool, deps Deps) *testNode {
	t.Helper()
	return startNodeConfig(t, dir, bootstrap, deps, nil)
}

// startNodeConfig is startNodeWith with a change to TestConfig.
func startNodeConfig(t *testing.T, dir string, bootstrap bool, deps Deps, change func(*Config)) *testNode {
	t.Helper()
	h, id := newHost(t, dir)
	tr, err := p2p.NewRaftTransport(h, quiet)
	if err != nil {
		t.Fatal(err)
	}
	cfg := TestConfig(filepath.Join(dir, "catalog"))
	cfg.NodeID, cfg.Bootstrap = id.String(), bootstrap
	if change != nil {
		change(&cfg)
	}
	deps.Transport, deps.Log = tr, quiet
	cat, err := Open(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{dir: dir, host: h, id: id, cat: cat}
	t.Cleanup(n.stop)
	return n
}

func (n *testNode) stop() {
	if n.cat != nil {
		_ = n.cat.Close()
		_ = n.host.Close()
		n.cat = nil
	}
}

func waitLeader(t *testing.T, c *Catalog) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "leadership", c.IsLeader)
}

func hashOf(i int) nixid.StorePathHash {
	const alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
	b := []byte("00000000000000000000000000000000")
	for j := 0; i > 0; j++ {
		b[31-j] = alphabet[i%32]
		i /= 32
	}
	return nixid.StorePathHash(b)
}

func object(cache nixid.CacheName, i int) Object {
	h := hashOf(i)
	return Object{Cache: cache, StorePathHash: h, StorePath: "/nix/store/" + string(h) + "-p", NarSize: int64(i),
		References: []string{}, Manifest: chunkstore.ManifestID{byte(i), byte(i >> 8), 1}}
}

func TestCatalog_Commands(t *testing.T) {
	n := startNode(t, t.TempDir(), true)
	waitLeader(t, n.cat)
	ctx := context.Background()
	c := n.cat
	if err := c.CreateCache(ctx, Cache{Name: "a", StoreDir: "/nix/store", Priority: 41}); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateCache(ctx, Cache{Name: "a"}); !errors.Is(err, ErrCacheExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := c.PutObject(ctx, object("nope", 1)); !errors.Is(err, ErrNoSuchCache) {
		t.Fatalf("object in missing cache: %v", err)
	}
	pub, prio, period := true, int32(30), uint32(60)
	if err := c.ConfigureCache(ctx, "a", CachePatch{IsPublic: &pub, Priority: &prio, SetRetention: true, RetentionPeriod: &period}); err != nil {
		t.Fatal(err)
	}
	if cc, err := c.Cache("a"); err != nil || !cc.IsPublic || cc.Priority != 30 || *cc.RetentionPeriod != 60 || cc.StoreDir != "/nix/store" {
		t.Fatalf("after configure: %+v %v", cc, err)
	}
	if err := c.ConfigureCache(ctx, "a", CachePatch{SetRetention: true}); err != nil {
		t.Fatal(err)
	}
	if cc, _ := c.Cache("a"); cc.RetentionPeriod != nil {
		t.Fatal("retention not reset to global")
	}
	for i := 1; i <= 3; i++ {
		if err := c.PutObject(ctx, object("a", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.PutFile(ctx, File{Cache: "a", Name: "log/x.drv", Manifest: chunkstore.ManifestID{9}}); err != nil {
		t.Fatal(err)
	}
	missing, _ := c.MissingPaths("a", []nixid.StorePathHash{hashOf(1), hashOf(7), hashOf(7)})
	if len(missing) != 1 || missing[0] != hashOf(7) {
		t.Fatalf("missing %v", missing)
	}
	if n, err := c.DeleteObjects(ctx, "a", []nixid.StorePathHash{hashOf(1), hashOf(9)}); err != nil || n != 1 {
		t.Fatalf("delete: %d %v", n, err)
	}
	if _, err := c.Object("a", hashOf(1)); !errors.Is(err, ErrNoSuchObject) {
		t.Fatalf("deleted object: %v", err)
	}
	var manifests int
	_ = c.ForEachManifest(func(chunkstore.ManifestID) error { manifests++; return nil })
	if manifests != 3 {
		t.Fatalf("%d manifests, want 2 objects + 1 file", manifests)
	}
	if err := c.RevokeToken(ctx, "jti-1", time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("revocation: %v", err)
	}
	if yes, err := c.IsRevoked("jti-1"); !yes || err != nil {
		t.Fatalf("jti-1 revoked: %v %v", yes, err)
	}
	if yes, err := c.IsRevoked("jti-2"); yes || err != nil {
		t.Fatalf("jti-2 revoked: %v %v", yes, err)
	}
	if err := c.DestroyCache(ctx, "a", HardDelete); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Object("a", hashOf(2)); !errors.Is(err, ErrNoSuchObject) {
		t.Fatalf("object after destroy: %v", err)
	}
	if _, err := c.File("a", "log/x.drv"); !errors.Is(err, ErrNoSuchFile) {
		t.Fatalf("file after destroy: %v", err)
	}
	if err := c.DestroyCache(ctx, "a", HardDelete); !errors.Is(err, ErrNoSuchCache) {
		t.Fatalf("destroy twice: %v", err)
	}
}

func TestCatalog_BatchingAndOrder(t *testing.T) {
	n := startNode(t, t.TempDir(), true)
	waitLeader(t, n.cat)
	var entries atomic.Int64
	n.cat.fsm.applyHook = func(uint64) { entries.Add(1) }
	ctx := context.Background()
	// A create followed by a put in one batch applies in order.
	n.cat.proposals <- queued(t, cmdOf(&createCache{Cache: &Cache{Name: "b"}}))
	if err := n.cat.PutObject(ctx, object("b", 1)); err != nil {
		t.Fatalf("put after create in one batch: %v", err)
	}
	entries.Store(0)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- n.cat.PutObject(ctx, object("b", 100+i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	missing, _ := n.cat.MissingPaths("b", func() (hs []nixid.StorePathHash) {
		for i := range 200 {
			hs = append(hs, hashOf(100+i))
		}
		return
	}())
	if len(missing) != 0 || entries.Load() >= 100 {
		t.Fatalf("%d missing, %d log entries for 200 writes", len(missing), entries.Load())
	}
}

func TestCatalog_RestartAppliesNothingTwice(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, true)
	waitLeader(t, n.cat)
	ctx := context.Background()
	if err := n.cat.CreateCache(ctx, Cache{Name: "r"}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := n.cat.PutObject(ctx, object("r", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.cat.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := n.cat.PutObject(ctx, object("r", 50+i)); err != nil {
			t.Fatal(err)
		}
	}
	before := n.cat.AppliedIndex()
	n.stop()

	n2 := startNode(t, dir, true) // Bootstrap is ignored: state exists.
	var reapplied atomic.Int64
	n2.cat.fsm.applyHook = func(idx uint64) {
		if idx <= before {
			reapplied.Add(1)
		}
	}
	waitLeader(t, n2.cat)
	if _, err := n2.cat.Object("r", hashOf(52)); err != nil {
		t.Fatalf("state after restart: %v", err)
	}
	if err := n2.cat.PutObject(ctx, object("r", 99)); err != nil {
		t.Fatal(err)
	}
	if reapplied.Load() != 0 || n2.cat.AppliedIndex() <= before {
		t.Fatalf("reapplied %d entries; applied index %d -> %d", reapplied.Load(), before, n2.cat.AppliedIndex())
	}
	if cs, _ := n2.cat.Caches(); len(cs) != 1 {
		t.Fatalf("caches %v", cs)
	}
}

func TestFSM_SnapshotRestore(t *testing.T) {
	n := startNode(t, t.TempDir(), true)
	waitLeader(t, n.cat)
	ctx := context.Background()
	_ = n.cat.CreateCache(ctx, Cache{Name: "s"})
	for i := range 10 {
		if err := n.cat.PutObject(ctx, object("s", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	f := restoredCopy(t, n.cat)
	st := f.st
	if f.applied.Load() != n.cat.AppliedIndex() {
		t.Fatalf("restored applied index %d, want %d", f.applied.Load(), n.cat.AppliedIndex())
	}
	var o Object
	if ok, err := st.get(objectKey("s", hashOf(7)), &o); !ok || err != nil || o.NarSize != 7 {
		t.Fatalf("restored object: %v %v %+v", ok, err, o)
	}
}

type memSink struct{ bytes.Buffer }

// restoredCopy snapshots c's FSM and restores the snapshot into a fresh FSM
// of the test's own (closed at cleanup), as a replica catching up would.
func restoredCopy(t *testing.T, c *Catalog) *fsm {
	t.Helper()
	snap, err := c.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	st, err := openState(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.close() })
	f := &fsm{st: st, log: quiet}
	if err := f.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	return f
}

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }
func (m *memSink) Close() error  { return nil }

// startCluster starts n catalogs over libp2p that know each other's
// addresses, bootstraps them as one Raft group of voters and returns the
// nodes and the leader. Forwarding is not enabled.
func startCluster(t *testing.T, n int) ([]*testNode, *Catalog) {
	t.Helper()
	nodes := make([]*testNode, n)
	for i := range nodes {
		nodes[i] = startNode(t, t.TempDir(), false)
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.host.Peerstore().AddAddrs(b.id, b.host.Addrs(), time.Hour)
			}
		}
	}
	var servers []raft.Server
	for _, n := range nodes {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n.id.String()), Address: raft.ServerAddress(n.id.String())})
	}
	if err := nodes[0].cat.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	var leader *Catalog
	eventually(t, "a leader", func() bool {
		for _, n := range nodes {
			if n.cat.IsLeader() {
				leader = n.cat
				return true
			}
		}
		return false
	})
	return nodes, leader
}

func TestCatalog_ThreeNodesOverLibp2p(t *testing.T) {
	nodes, leader := startCluster(t, 3)
	ctx := context.Background()
	if err := leader.CreateCache(ctx, Cache{Name: "shared"}); err != nil {
		t.Fatal(err)
	}
	if err := leader.PutObject(ctx, object("shared", 42)); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		eventually(t, fmt.Sprintf("replication to node %d", i), func() bool {
			_, err := n.cat.Object("shared", hashOf(42))
			return err == nil
		})
		if n.cat.IsLeader() {
			continue
		}
		// Without forwarding a follower refuses writes; with it, a write made on
		// a follower is applied there by the time the call returns.
		if n.cat.host == nil {
			if err := n.cat.CreateCache(ctx, Cache{Name: "x"}); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("follower write without forwarding: %v", err)
			}
			for _, m := range nodes {
				m.cat.serveOn(m.host)
			}
		}
		name := nixid.CacheName(fmt.Sprintf("via-%d", i))
		if err := n.cat.CreateCache(ctx, Cache{Name: name}); err != nil {
			t.Fatalf("forwarded write: %v", err)
		}
		if _, err := n.cat.Cache(name); err != nil {
			t.Fatalf("forwarded write not applied on the follower when it returned: %v", err)
		}
		if err := n.cat.CreateCache(ctx, Cache{Name: name}); !errors.Is(err, ErrCacheExists) {
			t.Fatalf("forwarded domain error: %v", err)
		}
		if cnt, err := n.cat.DeleteObjects(ctx, "shared", []nixid.StorePathHash{hashOf(42)}); err != nil || cnt != 1 {
			t.Fatalf("forwarded delete: %d %v", cnt, err)
		}
		if err := n.cat.PutObject(ctx, object("shared", 42)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCatalog_SparseWriterDoesNotWait: a client that writes one command at a
// time, with more than BatchDelay between its writes (Nix's narinfo PUTs, a
// NAR upload apart), is not made to wait BatchDelay for company once two
// such gaps are seen; a burst of concurrent writers right after it still
// shares entries.
func TestCatalog_SparseWriterDoesNotWait(t *testing.T) {
	const delay = 300 * time.Millisecond
	n := startNodeConfig(t, t.TempDir(), true, Deps{}, func(c *Config) { c.BatchDelay = delay })
	waitLeader(t, n.cat)
	ctx := context.Background()
	if err := n.cat.CreateCache(ctx, Cache{Name: "w"}); err != nil {
		t.Fatal(err)
	}
	var waited []int
	for i := range 6 {
		time.Sleep(delay + 50*time.Millisecond)
		start := time.Now()
		if err := n.cat.PutObject(ctx, object("w", i+1)); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) >= delay {
			waited = append(waited, i)
		}
	}
	// The create and the first put came after long gaps too, so at most the
	// first put may still wait; a loaded machine may stretch one more.
	if len(waited) > 2 {
		t.Fatalf("writes %v of 6, each %v after the last, waited BatchDelay for company", waited, delay+50*time.Millisecond)
	}
	var entries atomic.Int64
	n.cat.fsm.applyHook = func(uint64) { entries.Add(1) }
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.cat.PutObject(ctx, object("w", 100+i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if entries.Load() > 5 {
		t.Fatalf("50 concurrent writes after the sparse ones took %d log entries", entries.Load())
	}
}

// TestCatalog_BatchDelayFollowsCommitTime: the batcher's wait is a tenth of
// the recent commit time, never below BatchDelay nor above 10× it.
func TestCatalog_BatchDelayFollowsCommitTime(t *testing.T) {
	c := &Catalog{cfg: Config{BatchDelay: 2 * time.Millisecond}}
	if d := c.batchDelay(); d != 2*time.Millisecond {
		t.Fatalf("no commit yet: %v", d)
	}
	c.commitTook(3 * time.Millisecond) // a local commit
	if d := c.batchDelay(); d != 2*time.Millisecond {
		t.Fatalf("after a 3 ms commit: %v, want BatchDelay", d)
	}
	for range 100 {
		c.commitTook(150 * time.Millisecond) // a quorum across regions
	}
	if d := c.batchDelay(); d < 14*time.Millisecond || d > 15*time.Millisecond {
		t.Fatalf("after 150 ms commits: %v, want ~15 ms", d)
	}
	for range 100 {
		c.commitTook(2 * time.Second)
	}
	if d := c.batchDelay(); d != 20*time.Millisecond {
		t.Fatalf("after 2 s commits: %v, want the 20 ms cap", d)
	}
}
