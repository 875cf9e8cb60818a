package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/eventually"
	"github.com/garret-cache/garret/internal/narinfo"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/internal/serverconfig"
	"github.com/garret-cache/garret/replication/catalog"
)

func clusterConfig(t *testing.T, name, region string, join []string) *serverconfig.Config {
	t.Helper()
	joinTOML := ""
	for i, j := range join {
		if i > 0 {
			joinTOML += ", "
		}
		joinTOML += fmt.Sprintf("%q", j)
	}
	text := fmt.Sprintf(`listen = "127.0.0.1:0"
data-dir = %q
[jwt.signing]
token-hs256-secret-base64 = %q
[cluster]
node-name = %q
region = %q
secret = "cluster-test-secret-0123456789abcdef-xyz"
gossip-listen = "127.0.0.1:0"
join = [%s]
`, t.TempDir(), base64.StdEncoding.EncodeToString([]byte("node-test-secret-node-test-secret")), name, region, joinTOML)
	p := filepath.Join(t.TempDir(), "server.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := serverconfig.Load(p, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestCluster_JoinAndWriteOnAnyNode: a bootstrapped node and two that join
// by gossip form one Raft group; a write on a follower is visible everywhere.
func TestCluster_JoinAndWriteOnAnyNode(t *testing.T) {
	// These nodes do not sync: a step below shows read-through of a NAR
	// the reading node lacks.
	noSync := func(cfg *serverconfig.Config) *serverconfig.Config { cfg.Cluster.NoSync = true; return cfg }
	first, err := start(t, noSync(clusterConfig(t, "eu-1", "eu", nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Shutdown(context.Background())
	seed := first.cluster.GossipAddr()
	nodes := []*Node{first}
	for _, name := range []string{"us-1", "us-2"} {
		n, err := start(t, noSync(clusterConfig(t, name, "us", []string{seed})))
		if err != nil {
			t.Fatal(err)
		}
		defer n.Shutdown(context.Background())
		nodes = append(nodes, n)
	}
	step(t, "two nodes join by gossip and become voters", func(t *testing.T) {
		eventually.True(t, "three voters", func() bool {
			servers, err := first.Catalog().Servers()
			if err != nil {
				return false
			}
			voters := 0
			for _, s := range servers {
				if s.Voter {
					voters++
				}
			}
			return voters == 3
		})
		eventually.True(t, "gossip sees everyone everywhere", func() bool {
			for _, n := range nodes {
				if len(n.cluster.Members()) != 3 {
					return false
				}
			}
			return true
		})
		// Every node advertises its command version, so new command types may
		// be proposed.
		for _, n := range nodes {
			if v := n.cluster.MinVersion(); v != catalog.CommandVersion {
				t.Fatalf("MinVersion %d with every node on version %d", v, catalog.CommandVersion)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var follower *Node
	step(t, "a write on a follower reaches every node", func(t *testing.T) {
		eventually.True(t, "a follower that knows the leader", func() bool {
			for _, n := range nodes {
				if n.Catalog().Leader() != "" && !n.Catalog().IsLeader() {
					follower = n
					return true
				}
			}
			return false
		})
		if err := follower.Catalog().CreateCache(ctx, catalog.Cache{Name: "anywhere", StoreDir: "/nix/store"}); err != nil {
			t.Fatalf("write on a follower: %v", err)
		}
		for i, n := range nodes {
			eventually.True(t, fmt.Sprintf("the cache on node %d", i), func() bool {
				_, err := n.Catalog().Cache("anywhere")
				return err == nil
			})
		}
	})

	step(t, "the cluster status has every node's own progress", func(t *testing.T) {
		st := nodes[1].cluster.ClusterStatus(ctx)
		roles, states := map[string]int{}, map[string]int{}
		for _, cn := range st.Nodes {
			roles[cn.Role]++
			states[cn.State]++
			// Every node answered with its own progress: it has applied the cache.
			if cn.Unreachable || cn.Health != "alive" || cn.AppliedIndex < 2 || cn.CommitIndex < cn.AppliedIndex || cn.Term != st.Term {
				t.Fatalf("status of %s: %+v (answering node's term %d)", cn.Name, cn, st.Term)
			}
		}
		if len(st.Nodes) != 3 || roles["voter"] != 3 || st.Leader == "" || st.Term == 0 || states["leader"] != 1 || states["follower"] != 2 {
			t.Fatalf("cluster status: %+v", st)
		}
	})

	// Two Raft groups cannot merge.
	step(t, "a node holding another cluster's catalog is refused", func(t *testing.T) {
		loner, err := start(t, clusterConfig(t, "loner", "eu", nil))
		if err != nil {
			t.Fatal(err)
		}
		lonerDir, lonerID := loner.cfg.Server.DataDir, loner.Catalog().ClusterID()
		if lonerID == "" || lonerID == first.Catalog().ClusterID() {
			t.Fatalf("cluster ids: loner %q, cluster %q", lonerID, first.Catalog().ClusterID())
		}
		_ = loner.Shutdown(context.Background())
		cfg := clusterConfig(t, "loner", "eu", []string{seed})
		cfg.DataDir = lonerDir
		intruder, err := start(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		eventually.True(t, "gossip to see the intruder", func() bool { return len(first.cluster.Members()) == 4 })
		for _, n := range nodes {
			n.cluster.Reconcile()
		}
		if servers, err := first.Catalog().Servers(); err != nil || len(servers) != 3 {
			t.Fatalf("the node of another cluster entered the Raft configuration: %+v %v", servers, err)
		}
		_ = intruder.Shutdown(context.Background())
		eventually.True(t, "gossip to forget the intruder", func() bool { return len(first.cluster.Members()) == 3 })
	})

	// Bytes stay where they were pushed but are never out of reach.
	step(t, "a NAR ingested on the first node is served, identical, by the last", func(t *testing.T) {
		key, _ := narinfo.GenerateKeypair("pub")
		if err := follower.Catalog().CreateCache(ctx, catalog.Cache{Name: "pub", Keypair: key, IsPublic: true, StoreDir: "/nix/store"}); err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte("a NAR's worth of bytes that spans a few chunks\n"), 20000)
		hash := "0123456789abcdfghijklmnpqrsvwxyz"
		res := pushObject(t, first, follower, "pub", hash, data)
		last := nodes[2]
		eventually.True(t, "the object on the last node", func() bool {
			_, err := last.Catalog().Object("pub", nixid.StorePathHash(hash))
			return err == nil
		})
		if ok, _ := last.Store().HasChunk(res.Manifest.Chunks[0].ID); ok {
			t.Fatal("the last node already had the chunks; the test proves nothing")
		}
		resp, err := http.Get(last.URL() + "pub/nar/" + hash + ".nar")
		if err != nil {
			t.Fatal(err)
		}
		served, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		dec, _ := zstd.NewReader(nil)
		defer dec.Close()
		raw, err := dec.DecodeAll(served, nil)
		if resp.StatusCode != 200 || err != nil || !bytes.Equal(raw, data) {
			t.Fatalf("NAR from the last node: %d, %v, %d bytes", resp.StatusCode, err, len(raw))
		}
		if got := scrape(t, last, "garret_nar_read_through_total"); got != 1 {
			t.Fatalf("garret_nar_read_through_total %v after one read-through", got)
		}
	})

	step(t, "the leader leaves gracefully and the others carry on with two voters", func(t *testing.T) {
		var leader *Node
		for _, n := range nodes {
			if n.Catalog().IsLeader() {
				leader = n
			}
		}
		if err := leader.Shutdown(context.Background()); err != nil {
			t.Fatalf("leader shutdown: %v", err)
		}
		var rest []*Node
		for _, n := range nodes {
			if n != leader {
				rest = append(rest, n)
			}
		}
		eventually.True(t, "a configuration of two servers with a new leader", func() bool {
			for _, n := range rest {
				if n.Catalog().IsLeader() {
					servers, err := n.Catalog().Servers()
					return err == nil && len(servers) == 2
				}
			}
			return false
		})
		if err := rest[0].Catalog().CreateCache(ctx, catalog.Cache{Name: "after-leave", StoreDir: "/nix/store"}); err != nil {
			t.Fatalf("write after the leader left: %v", err)
		}
	})
}

// step runs one step of a scenario as a subtest and stops the scenario at
// the first step that fails (later steps build on it).
func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, f) {
		t.FailNow()
	}
}

// stoppedByTest holds the nodes a test stopped itself (*Node → true), which
// the cleanup must not shut down again.
var stoppedByTest sync.Map

func stopped(n *Node) bool {
	_, ok := stoppedByTest.Load(n)
	return ok
}

// startCluster starts a node with FastTimings and the given dead-voter
// timeout; it is shut down at the end of the test unless crashed first.
func startCluster(t *testing.T, cfg *serverconfig.Config, deadVoter time.Duration) *Node {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("at", cfg.Cluster.NodeName)
	}
	n, err := New(Config{Server: cfg, Logger: log, FastTimings: true, DeadVoterTimeout: deadVoter})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !stopped(n) {
			_ = n.Shutdown(context.Background())
		}
	})
	return n
}

// raftConfig is the leader's configuration as ID → voter.
func raftConfig(n *Node) map[string]bool {
	servers, err := n.Catalog().Servers()
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, s := range servers {
		out[s.ID] = s.Voter
	}
	return out
}

// TestCluster_VotersSpreadAndDeadVoterReplaced: four nodes in two regions
// get three voters covering both; a voter that crashes (no leave) is removed
// after DeadVoterTimeout and the non-voter takes its vote.
func TestCluster_VotersSpreadAndDeadVoterReplaced(t *testing.T) {
	const deadAfter = 500 * time.Millisecond
	first := startCluster(t, clusterConfig(t, "eu-1", "eu", nil), deadAfter)
	seed := first.cluster.GossipAddr()
	nodes := []*Node{first}
	for _, name := range []string{"eu-2", "us-1", "us-2"} {
		nodes = append(nodes, startCluster(t, clusterConfig(t, name, name[:2], []string{seed}), deadAfter))
	}
	byID := map[string]*Node{}
	for _, n := range nodes {
		byID[n.host.ID().String()] = n
	}
	leader := func() *Node {
		for _, n := range nodes {
			if !stopped(n) && n.Catalog().IsLeader() {
				return n
			}
		}
		return nil
	}
	regions := func(conf map[string]bool) map[string]bool {
		out := map[string]bool{}
		for id, v := range conf {
			if v {
				out[byID[id].cfg.Server.Cluster.Region] = true
			}
		}
		return out
	}
	voters := func(conf map[string]bool) (n int) {
		for _, v := range conf {
			if v {
				n++
			}
		}
		return n
	}
	var conf map[string]bool
	eventually.True(t, "four servers, three voters covering eu and us", func() bool {
		l := leader()
		if l == nil {
			return false
		}
		conf = raftConfig(l)
		return len(conf) == 4 && voters(conf) == 3 && len(regions(conf)) == 2
	})
	var victim, standby *Node
	l := leader()
	for id, v := range conf {
		switch {
		case !v:
			standby = byID[id]
		case byID[id] != l && victim == nil:
			victim = byID[id]
		}
	}
	victim.crash()
	crashedAt := time.Now()
	victimID, standbyID := victim.host.ID().String(), standby.host.ID().String()
	st := l.cluster.ClusterStatus(context.Background())
	if took := time.Since(crashedAt); took > 3*time.Second {
		t.Fatalf("the cluster status took %v with a node down", took)
	}
	for _, cn := range st.Nodes {
		health := map[bool]string{true: "suspect", false: "alive"}
		if down := cn.PeerID == victimID; cn.Unreachable != down || cn.Health != health[down] || (down && (cn.State != "" || cn.AppliedIndex != 0)) || (!down && cn.State == "") {
			t.Fatalf("status of %s right after %s crashed: %+v", cn.Name, victim.cfg.Server.Cluster.NodeName, cn)
		}
	}
	eventually.True(t, "the dead voter removed and the non-voter promoted", func() bool {
		l := leader()
		if l == nil {
			return false
		}
		conf = raftConfig(l)
		_, still := conf[victimID]
		return !still && len(conf) == 3 && conf[standbyID] && len(regions(conf)) == 2
	})
	// Out of Raft, the victim is still shown, as gossip last saw it.
	victimName := victim.cfg.Server.Cluster.NodeName
	eventually.True(t, "the removed voter listed as departed (dead)", func() bool {
		l := leader()
		if l == nil {
			return false
		}
		st := l.cluster.ClusterStatus(context.Background())
		return len(st.Departed) == 1 && st.Departed[0].Name == victimName && st.Departed[0].Health == "dead"
	})
	if waited := time.Since(crashedAt); waited < deadAfter {
		t.Fatalf("the voter was replaced %v after the crash, before DeadVoterTimeout", waited)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := standby.Catalog().CreateCache(ctx, catalog.Cache{Name: "after-crash", StoreDir: "/nix/store"}); err != nil {
		t.Fatalf("write after the voter was replaced: %v", err)
	}
}

// crash stops the node as a crash would: gossip stops without a leave and
// Raft without leaving the configuration.
func (n *Node) crash() {
	stoppedByTest.Store(n, true)
	n.cluster.Kill()
	_ = n.close()
}

// TestCluster_SyncCopiesPushesToOtherNodes: a cluster node copies what is
// pushed elsewhere by itself, before anyone reads it.
func TestCluster_SyncCopiesPushesToOtherNodes(t *testing.T) {
	first := startCluster(t, clusterConfig(t, "eu-1", "eu", nil), time.Minute)
	second := startCluster(t, clusterConfig(t, "us-1", "us", []string{first.cluster.GossipAddr()}), time.Minute)
	eventually.True(t, "two servers", func() bool { s, err := first.Catalog().Servers(); return err == nil && len(s) == 2 })
	// The second voter's arrival may move leadership: create the cache
	// until it exists (a create is not retried for us: it is not
	// idempotent).
	eventually.True(t, "the cache", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := first.Catalog().CreateCache(ctx, catalog.Cache{Name: "s", StoreDir: "/nix/store"})
		return err == nil || errors.Is(err, catalog.ErrCacheExists)
	})
	data := bytes.Repeat([]byte("synced to every node without a read\n"), 30000)
	res := pushObject(t, first, first, "s", "1123456789abcdfghijklmnpqrsvwxyz", data)
	eventually.True(t, "the second node to hold every chunk", func() bool {
		for _, c := range res.Manifest.Chunks {
			if ok, _ := second.Store().HasChunk(c.ID); !ok {
				return false
			}
		}
		return true
	})
	// The syncer counts the copy once CopyManifest returns, a moment after
	// the last chunk is stored.
	eventually.True(t, "/metrics to show the copy", func() bool { return scrape(t, second, "garret_syncer_manifests_fetched_total") == 1 })
	// The cluster status shows both nodes' replication, asked over libp2p.
	st, b := apiDo(t, first, "GET", "_api/v1/cluster", nil, nil, token.MintOptions{Subject: "admin", Validity: time.Hour, ClusterAdmin: true})
	var cs v1.ClusterStatus
	if st != 200 || json.Unmarshal(b, &cs) != nil || len(cs.Nodes) != 2 {
		t.Fatalf("cluster status: %d %s", st, b)
	}
	for _, n := range cs.Nodes {
		r := n.Replication
		if r == nil || r.Backlog != 0 || r.LagSeconds != 0 {
			t.Fatalf("replication of %s: %+v", n.Name, r)
		}
		if n.Name == "us-1" && (r.Fetched != 1 || r.FrameBytes == 0) {
			t.Fatalf("us-1 copied the object, its status says %+v", r)
		}
	}
}

// pushObject ingests data on store's node and commits it as an object of
// cache through via's catalog, as a push does.
func pushObject(t *testing.T, store, via *Node, cache, hash string, data []byte) *chunkstore.IngestResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := store.Store().Ingest(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	mid, err := store.Store().PutManifest(res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	obj := catalog.Object{Cache: nixid.CacheName(cache), StorePathHash: nixid.StorePathHash(hash), StorePath: "/nix/store/" + hash + "-x",
		References: []string{}, NarHash: nixid.NarHash(sha256.Sum256(data)), NarSize: int64(len(data)), Manifest: mid}
	if err := via.Catalog().PutObject(ctx, obj); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestCluster_PushAcknowledgedOnlyWhenCopied: with the default
// min-copies-before-ack (2), a push answered 200 is already held by the
// other node, although that node copies nothing in the background; with
// min-copies-before-ack = 1 it is not.
func TestCluster_PushAcknowledgedOnlyWhenCopied(t *testing.T) {
	for _, copies := range []int{0, 1} {
		t.Run(fmt.Sprintf("min-copies-before-ack=%d", copies), func(t *testing.T) {
			cfg := clusterConfig(t, "eu-1", "eu", nil)
			cfg.Cluster.MinCopiesBeforeAck = copies
			first := startCluster(t, cfg, time.Minute)
			other := clusterConfig(t, "us-1", "us", []string{first.cluster.GossipAddr()})
			other.Cluster.NoSync = true
			second := startCluster(t, other, time.Minute)
			eventually.True(t, "two servers", func() bool { s, err := first.Catalog().Servers(); return err == nil && len(s) == 2 })
			eventually.True(t, "gossip to show the other node", func() bool { return len(first.cluster.PlacementPeers()) == 1 })
			eventually.True(t, "the cache", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				err := first.Catalog().CreateCache(ctx, catalog.Cache{Name: "s", StoreDir: "/nix/store"})
				return err == nil || errors.Is(err, catalog.ErrCacheExists)
			})
			content := bytes.Repeat([]byte("held by two nodes before the push is answered\n"), 40000)
			nar := fileNAR(content)
			hash := "3123456789abcdfghijklmnpqrsvwxyz"
			info, _ := json.Marshal(v1.UploadPathNarInfo{Cache: "s", StorePathHash: hash, StorePath: "/nix/store/" + hash + "-x",
				References: []string{}, Sigs: []string{}, NarHash: nixid.NarHash(sha256.Sum256(nar)).Hex(), NarSize: int64(len(nar))})
			st, b := apiDo(t, first, "PUT", "_api/v1/upload-path", bytes.NewReader(nar), map[string]string{v1.HeaderNarInfo: string(info)},
				token.MintOptions{Subject: "pusher", Validity: time.Hour, Push: []string{"s"}, Pull: []string{"s"}})
			if st != 200 {
				t.Fatalf("upload-path: %d %s", st, b)
			}
			obj, err := first.Catalog().Object("s", nixid.StorePathHash(hash))
			if err != nil {
				t.Fatal(err)
			}
			m, err := first.Store().Manifest(obj.Manifest)
			if err != nil {
				t.Fatal(err)
			}
			held := 0
			for _, c := range m.Chunks {
				if ok, _ := second.Store().HasChunk(c.ID); ok {
					held++
				}
			}
			if copies == 1 && held != 0 {
				t.Fatalf("min-copies-before-ack = 1, sync = false: the other node holds %d chunks", held)
			}
			if copies != 1 && held != len(m.Chunks) {
				t.Fatalf("acknowledged while the other node holds %d of %d chunks", held, len(m.Chunks))
			}
		})
	}
}

// fileNAR is a NAR of one regular file.
func fileNAR(content []byte) []byte {
	var b bytes.Buffer
	str := func(s []byte) {
		_ = binary.Write(&b, binary.LittleEndian, uint64(len(s)))
		b.Write(s)
		b.Write(make([]byte, (8-len(s)%8)%8))
	}
	for _, tok := range []string{"nix-archive-1", "(", "type", "regular", "contents"} {
		str([]byte(tok))
	}
	str(content)
	str([]byte(")"))
	return b.Bytes()
}

// scrape is the value of an unlabelled series on n's /metrics.
func scrape(t *testing.T, n *Node, name string) float64 {
	t.Helper()
	resp, err := http.Get(n.URL() + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics of %s has no %s", n.URL(), name)
	return 0
}
