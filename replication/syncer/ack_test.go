package syncer_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/eventually"
	"github.com/garret-cache/garret/replication/cluster/clustertest"
	"github.com/garret-cache/garret/replication/p2p"
	"github.com/garret-cache/garret/replication/placement"
	"github.com/garret-cache/garret/replication/syncer"
)

// stage stores data on n without committing it (a push not yet
// acknowledged).
func stage(t *testing.T, n *clustertest.Node, data []byte) chunkstore.ManifestID {
	t.Helper()
	res, err := n.Store.Ingest(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	id, err := n.Store.PutManifest(res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func fetcher(n *clustertest.Node) *p2p.Fetcher {
	return &p2p.Fetcher{Host: n.Host, Store: n.Store, Peers: n.Cluster.PeersByDistance, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// serveCopies makes every node of c answer copy requests.
func serveCopies(c *clustertest.Cluster) {
	for _, n := range c.Nodes {
		syncer.ServeCopies(n.Host, n.Store, fetcher(n), nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
}

// acker is n's Acker for copies, asking peers in the order given.
func acker(n *clustertest.Node, copies int, peers ...*clustertest.Node) *syncer.Acker {
	return syncer.NewAcker(syncer.AckConfig{Copies: copies}, syncer.AckDeps{Host: n.Host,
		Self: placement.Node{ID: n.ID(), Region: n.Region},
		Peers: func() []placement.Node {
			var out []placement.Node
			for _, p := range peers {
				out = append(out, placement.Node{ID: p.ID(), Region: p.Region})
			}
			return out
		},
		Local: &syncer.Copier{Store: n.Store, Fetcher: fetcher(n)}})
}

// TestAcker_CopyInAnotherRegion: with two copies, the push waits until the
// node of the other region holds every chunk (not the nearer one of its own
// region); with three, until both do.
func TestAcker_CopyInAnotherRegion(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{}, "eu", "eu", "us")
	serveCopies(c)
	a, near, far := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	ctx := context.Background()

	id := stage(t, a, randomData(10, 3<<20))
	if err := acker(a, 2, near, far).Ensure(ctx, id); err != nil {
		t.Fatal(err)
	}
	if !complete(far, id) {
		t.Fatal("acknowledged before the other region held the push")
	}
	if complete(near, id) {
		t.Fatal("two copies asked, but three nodes hold the push")
	}

	id = stage(t, a, randomData(11, 1<<20))
	if err := acker(a, 3, near, far).Ensure(ctx, id); err != nil {
		t.Fatal(err)
	}
	if !complete(far, id) || !complete(near, id) {
		t.Fatal("three copies asked, fewer hold the push")
	}
}

// TestAcker_FailsOverAndRefuses: a peer that cannot take the copy is
// replaced by the next; when no peer can, the push is refused with
// ErrTooFewCopies.
func TestAcker_FailsOverAndRefuses(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{}, "eu", "eu", "us")
	serveCopies(c)
	a, near, far := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	far.Stop()
	ctx := context.Background()

	id := stage(t, a, randomData(12, 1<<20))
	if err := acker(a, 2, near, far).Ensure(ctx, id); err != nil {
		t.Fatalf("with the far node down the near one should take the copy: %v", err)
	}
	if !complete(near, id) {
		t.Fatal("acknowledged, but the near node does not hold the push")
	}

	id = stage(t, a, randomData(13, 1<<20))
	err := acker(a, 2, far).Ensure(ctx, id)
	if !errors.Is(err, syncer.ErrTooFewCopies) {
		t.Fatalf("the only peer is down: got %v, want ErrTooFewCopies", err)
	}

	// Fewer live nodes than asked: the live ones are enough.
	if err := acker(a, 3, near).Ensure(ctx, id); err != nil || !complete(near, id) {
		t.Fatalf("three copies asked of two live nodes: %v", err)
	}
}

// TestAcker_PushStagedOnAPeer: the node that commits a push need not hold
// it (Nix's NAR went to another node); the copies are counted where they
// are, and this node copies it too when it must.
func TestAcker_PushStagedOnAPeer(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{}, "eu", "eu")
	serveCopies(c)
	a, b := c.Nodes[0], c.Nodes[1]
	id := stage(t, b, randomData(14, 2<<20))
	if err := acker(a, 2, b).Ensure(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if !complete(a, id) || !complete(b, id) {
		t.Fatal("two copies asked; the committing node should have copied the push")
	}
}

// TestAcker_StartInBackground: Start copies without a caller waiting (Nix's
// NAR PUT); the Ensure that follows (its narinfo PUT) joins it.
func TestAcker_StartInBackground(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{}, "eu", "us")
	serveCopies(c)
	a, far := c.Nodes[0], c.Nodes[1]
	ack := acker(a, 2, far)
	id := stage(t, a, randomData(15, 2<<20))
	ack.Start(id)
	eventually.True(t, "the copy started in the background", func() bool { return complete(far, id) })
	if err := ack.Ensure(context.Background(), id); err != nil {
		t.Fatal(err)
	}

	// A failed attempt is tried again by Ensure.
	id = stage(t, a, randomData(16, 1<<20))
	far.Host.RemoveStreamHandler(syncer.CopyProtocol)
	ack.Start(id)
	time.Sleep(200 * time.Millisecond)
	syncer.ServeCopies(far.Host, far.Store, fetcher(far), nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := ack.Ensure(context.Background(), id); err != nil || !complete(far, id) {
		t.Fatalf("Ensure after a failed background attempt: %v", err)
	}
}

// TestAcker_AsksThePlacedNode: with one copy per region, the copy goes to
// the node of the other region that placement names (not simply the
// nearest), so acknowledging a push makes no copy the syncer would not.
func TestAcker_AsksThePlacedNode(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{}, "eu", "us", "us")
	serveCopies(c)
	a, us1, us2 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	all := members(c)()
	for i := range 6 {
		id := stage(t, a, randomData(uint64(40+i), 256<<10))
		ack := syncer.NewAcker(syncer.AckConfig{Copies: 2, CopiesPerRegion: 1}, syncer.AckDeps{Host: a.Host,
			Self: placement.Node{ID: a.ID(), Region: a.Region},
			Peers: func() []placement.Node {
				return []placement.Node{{ID: us1.ID(), Region: "us"}, {ID: us2.ID(), Region: "us"}}
			},
			Local: &syncer.Copier{Store: a.Store, Fetcher: fetcher(a)}})
		if err := ack.Ensure(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		for _, n := range []*clustertest.Node{us1, us2} {
			if placed := placement.Holds(id[:], all, 1, n.ID()); complete(n, id) != placed {
				t.Fatalf("object %d: %s holds it %v, placement gives it %v", i, n.Name, complete(n, id), placed)
			}
		}
	}
}

// TestServeCopies_OnlyFromServers: a node refuses a copy request from a
// peer its allow check rejects (in a node: one outside the Raft
// configuration), so the push is not acknowledged through it.
func TestServeCopies_OnlyFromServers(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{}, "eu", "us")
	a, far := c.Nodes[0], c.Nodes[1]
	syncer.ServeCopies(far.Host, far.Store, fetcher(far), nil, func(p peer.ID) bool { return p != a.Host.ID() },
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	id := stage(t, a, randomData(17, 256<<10))
	if err := acker(a, 2, far).Ensure(context.Background(), id); !errors.Is(err, syncer.ErrTooFewCopies) || complete(far, id) {
		t.Fatalf("a copy asked by a refused peer: %v (held: %v)", err, complete(far, id))
	}
}
