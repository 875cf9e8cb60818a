package syncer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/eventually"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/catalog"
	"github.com/garret-cache/garret/replication/cluster/clustertest"
	"github.com/garret-cache/garret/replication/p2p"
	"github.com/garret-cache/garret/replication/placement"
	"github.com/garret-cache/garret/replication/syncer"
)

func randomData(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// push stores data on n and commits it as an object of cache "c".
func push(t *testing.T, n *clustertest.Node, hash string, data []byte) chunkstore.ManifestID {
	t.Helper()
	return pushAt(t, n, hash, data, time.Now())
}

// pushAt is push with the object's CreatedAt.
func pushAt(t *testing.T, n *clustertest.Node, hash string, data []byte, at time.Time) chunkstore.ManifestID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := n.Store.Ingest(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	id, err := n.Store.PutManifest(res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	h := nixid.StorePathHash(hash)
	if err := n.Catalog.PutObject(ctx, catalog.Object{Cache: "c", StorePathHash: h, StorePath: "/nix/store/" + hash + "-x",
		References: []string{}, NarHash: nixid.NarHash(sha256.Sum256(data)), NarSize: int64(len(data)), Manifest: id,
		FileSize: res.StoredSize, CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	return id
}

func members(c *clustertest.Cluster) func() []placement.Node {
	return func() []placement.Node {
		var out []placement.Node
		for _, n := range c.Running() {
			out = append(out, placement.Node{ID: n.ID(), Region: n.Region})
		}
		return out
	}
}

func start(t *testing.T, c *clustertest.Cluster, n *clustertest.Node, perRegion int) (*syncer.Syncer, context.CancelFunc) {
	t.Helper()
	return startWith(t, n, perRegion, members(c))
}

// startWith is start with the members placement sees.
func startWith(t *testing.T, n *clustertest.Node, perRegion int, members func() []placement.Node) (*syncer.Syncer, context.CancelFunc) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := &p2p.Fetcher{Host: n.Host, Store: n.Store, Peers: n.Cluster.PeersByDistance, Log: log}
	s, err := syncer.New(syncer.Config{CopiesPerRegion: perRegion, RetryEvery: 200 * time.Millisecond, MembersEvery: 100 * time.Millisecond, Log: log},
		syncer.Deps{Catalog: n.Catalog, Store: n.Store, Fetcher: f, Self: placement.Node{ID: n.ID(), Region: n.Region}, Members: members})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return s, stop
}

// complete reports whether n holds manifest id and every chunk of it.
func complete(n *clustertest.Node, id chunkstore.ManifestID) bool {
	m, err := n.Store.Manifest(id)
	if err != nil {
		return false
	}
	for _, c := range m.Chunks {
		if ok, _ := n.Store.HasChunk(c.ID); !ok {
			return false
		}
	}
	return true
}

// TestSyncer_EveryNodeGetsEveryObject: an object pushed to one node reaches
// the others by themselves; a node that already holds most of the chunks
// fetches only the rest; a node that was stopped catches up when it starts
// again, fetching nothing it has.
func TestSyncer_EveryNodeGetsEveryObject(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{}, "eu", "eu", "us")
	ctx := context.Background()
	c.CreateCache("c")
	a, b, far := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	shared := randomData(1, 3<<20)
	// b already has most of the next NAR's content (a NAR it got before).
	if _, err := b.Store.Ingest(ctx, bytes.NewReader(shared)); err != nil {
		t.Fatal(err)
	}
	sa, _ := start(t, c, a, placement.All)
	sb, _ := start(t, c, b, placement.All)
	_, stopFar := start(t, c, far, placement.All)
	nar := append(append([]byte{}, shared...), randomData(2, 1<<20)...)
	id := push(t, a, "0123456789abcdfghijklmnpqrsvwxyz", nar)
	eventually.True(t, "every node to hold the object", func() bool { return complete(b, id) && complete(far, id) })
	if st := sa.Stats(); st.FrameBytes != 0 {
		t.Fatalf("the pushing node fetched %d bytes", st.FrameBytes)
	}
	if got := gathered(t, sb.Collector(), "garret_syncer_frame_bytes_total"); got != float64(sb.Stats().FrameBytes) || got == 0 {
		t.Fatalf("garret_syncer_frame_bytes_total %v, stats %d", got, sb.Stats().FrameBytes)
	}
	if st := sb.Stats(); st.FrameBytes == 0 || st.FrameBytes > 2<<20 {
		t.Fatalf("b fetched %d frame bytes; want only the ~1 MiB it lacked", st.FrameBytes)
	}

	// far is stopped; an object committed meanwhile reaches it when it
	// starts again, and what it had is not fetched again.
	stopFar()
	id2 := push(t, a, "1123456789abcdfghijklmnpqrsvwxyz", randomData(3, 2<<20))
	time.Sleep(200 * time.Millisecond)
	if complete(far, id2) {
		t.Fatal("a stopped syncer fetched")
	}
	again, _ := start(t, c, far, placement.All)
	eventually.True(t, "the restarted node to catch up", func() bool { return complete(far, id2) })
	if st := again.Stats(); st.FrameBytes > 3<<20 {
		t.Fatalf("the restarted node fetched %d bytes; the first object was local already", st.FrameBytes)
	}
}

// gathered is the value of the series name among c's.
func gathered(t *testing.T, c prometheus.Collector, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s", name)
	return 0
}

// TestSyncer_CopiesPerRegion: with one copy per region, exactly one node of
// each region holds a pushed object (besides the node that took the push).
func TestSyncer_CopiesPerRegion(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{}, "eu", "eu", "eu", "us")
	c.CreateCache("c")
	for _, n := range c.Nodes {
		start(t, c, n, 1)
	}
	id := push(t, c.Nodes[0], "2123456789abcdfghijklmnpqrsvwxyz", randomData(4, 1<<20))
	want := placement.Holders(id[:], members(c)(), 1)
	eventually.True(t, "the placed nodes to hold the object", func() bool {
		for _, h := range want {
			for _, n := range c.Nodes {
				if n.ID() == h.ID && !complete(n, id) {
					return false
				}
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond)
	holders := 0
	for _, n := range c.Nodes[1:] { // the pushing node holds it anyway
		if complete(n, id) {
			holders++
			if !placement.Holds(id[:], members(c)(), 1, n.ID()) {
				t.Errorf("%s holds an object placement did not give it", n.Name)
			}
		}
	}
	if holders == 0 || holders > 2 {
		t.Fatalf("%d other nodes hold the object; want the placed one per region", holders)
	}
}

// TestSyncer_Status: an object a node cannot copy yet (its only holder is
// down) shows in its status as backlog, with its size and its age since
// the push, also when the syncer finds it in its full pass over the
// catalog rather than in the change log (it did not: a restarted node's
// backlog showed 0 bytes and an age from the restart); once the holder is
// back it is copied and the backlog empties.
func TestSyncer_Status(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{}, "eu", "us")
	c.CreateCache("c")
	a, b := c.Nodes[0], c.Nodes[1]
	sb, stopB := start(t, c, b, placement.All)
	eventually.True(t, "the first pass", func() bool { return !sb.Status().Scanning })
	if st := sb.Status(); st.Backlog != 0 || st.LagSeconds != 0 {
		t.Fatalf("an empty catalog: %+v", st)
	}
	stopB()
	// b is stopped: the object waits for it. With b's syncer running
	// again but a's chunk server gone, b cannot copy it.
	pushed := time.Now().Add(-time.Minute)
	data := randomData(30, 1<<20)
	id := pushAt(t, a, "4123456789abcdfghijklmnpqrsvwxyz", data, pushed)
	a.Host.RemoveStreamHandler(p2p.ChunkProtocol)
	// b's catalog has the object before its syncer starts, so the full
	// pass finds it.
	eventually.True(t, "b's catalog to have the object", func() bool {
		_, err := b.Catalog.Object("c", "4123456789abcdfghijklmnpqrsvwxyz")
		return err == nil
	})
	sb, _ = start(t, c, b, placement.All)
	eventually.True(t, "a failed copy", func() bool { return sb.Stats().Failed > 0 })
	st := sb.Status()
	if st.Backlog != 1 || st.BacklogBytes == 0 || st.LagSeconds < 59 {
		t.Fatalf("status with an object that cannot be copied yet: %+v", st)
	}
	if got := gathered(t, sb.Collector(), "garret_syncer_lag_seconds"); got < 59 {
		t.Fatalf("garret_syncer_lag_seconds %v", got)
	}
	p2p.ServeChunks(a.Host, a.Store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	eventually.True(t, "the copy after a retry", func() bool { return complete(b, id) })
	eventually.True(t, "an empty backlog", func() bool { return sb.Status().Backlog == 0 })
	if st := sb.Status(); st.LagSeconds != 0 || st.FetchBytesPerSecond <= 0 || st.Fetched != 1 {
		t.Fatalf("status after the copy: %+v", st)
	}
}

// TestSyncer_ShareMovesWithMembers: with one copy per region, the us nodes
// split the objects between them; a third us node takes about a third and
// nothing placement does not give it; when a node leaves, the others take
// over its share without an operator.
func TestSyncer_ShareMovesWithMembers(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{}, "eu", "us", "us")
	c.CreateCache("c")
	// The members the syncers see, changed by the test (c.Nodes is not
	// safe to read while the test adds to it).
	var mu sync.Mutex
	live := members(c)()
	current := func() []placement.Node {
		mu.Lock()
		defer mu.Unlock()
		return append([]placement.Node(nil), live...)
	}
	setLive := func() {
		mu.Lock()
		live = members(c)()
		mu.Unlock()
	}
	stops := map[*clustertest.Node]context.CancelFunc{}
	for _, n := range c.Nodes {
		_, stops[n] = startWith(t, n, 1, current)
	}
	const objects = 48
	var ids []chunkstore.ManifestID
	for i := range objects {
		ids = append(ids, push(t, c.Nodes[0], fmt.Sprintf("%02d23456789abcdfghijklmnpqrsvwxyz", i), randomData(uint64(100+i), 64<<10)))
	}
	// placed waits until every node placement names for an object holds it.
	placed := func(what string) {
		t.Helper()
		eventually.True(t, what, func() bool {
			m := members(c)()
			for _, id := range ids {
				for _, h := range placement.Holders(id[:], m, 1) {
					for _, n := range c.Running() {
						if n.ID() == h.ID && !complete(n, id) {
							return false
						}
					}
				}
			}
			return true
		})
	}
	held := func(n *clustertest.Node) (count int) {
		for _, id := range ids {
			if complete(n, id) {
				count++
			}
		}
		return count
	}
	placed("each object on one us node")
	us1, us2 := c.Nodes[1], c.Nodes[2]
	if a, b := held(us1), held(us2); a+b != objects || a < objects/4 || b < objects/4 {
		t.Fatalf("us-1 holds %d, us-2 %d of %d objects; want each about half, together all once", a, b, objects)
	}

	us3 := c.Add(clustertest.Options{}, "us")
	c.WaitServers(4)
	setLive()
	_, stops[us3] = startWith(t, us3, 1, current)
	placed("the new node's share")
	time.Sleep(300 * time.Millisecond) // anything more would have arrived by now
	got := held(us3)
	for _, id := range ids {
		if complete(us3, id) && !placement.Holds(id[:], members(c)(), 1, us3.ID()) {
			t.Fatalf("the new node holds %s, which placement does not give it", id)
		}
	}
	if got < objects/6 || got > objects/2 {
		t.Fatalf("the new node holds %d of %d objects; want about a third", got, objects)
	}
	t.Logf("us-3 joined and took %d of %d objects", got, objects)

	stops[us1]()
	us1.Stop()
	setLive()
	placed("us-1's share taken over by the other us nodes")
	m := members(c)()
	for _, id := range ids {
		if hs := placement.Holders(id[:], m, 1); len(hs) != 2 {
			t.Fatalf("placement of %s over %d members: %v", id, len(m), hs)
		}
	}
}
