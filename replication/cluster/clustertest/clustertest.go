// Package clustertest builds in-process clusters from the replication
// components — libp2p host, chunk store serving its chunks, Raft catalog,
// cluster controller with gossip on loopback — without the HTTP API, for the controller's tests and the
// syncer's. Each node has its own data dir; all share one private network
// and gossip key and use fast (LAN) timings.
package clustertest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/eventually"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/catalog"
	"github.com/garret-cache/garret/replication/cluster"
	"github.com/garret-cache/garret/replication/p2p"
)

// Node is one in-process node.
type Node struct {
	Name, Region string
	Dir          string
	Host         host.Host
	Store        *chunkstore.Store // serves its chunks to peers (p2p.ServeChunks)
	Catalog      *catalog.Catalog
	Cluster      *cluster.Controller
	ctl          atomic.Pointer[cluster.Controller] // for the catalog's version gate
	stopped      bool
}

// ID is the node's peer ID (its Raft server ID).
func (n *Node) ID() string { return n.Host.ID().String() }

// Cluster is the nodes of one test.
type Cluster struct {
	t     testing.TB
	Nodes []*Node
	log   *slog.Logger
}

// Options change how nodes start.
type Options struct {
	// DeadVoterTimeout is the controller's (default 2 s, so tests of voter
	// replacement are quick).
	DeadVoterTimeout time.Duration
}

// Start starts one node per region given (named <region>-<i>): the first
// bootstraps, the others join it by gossip; it returns once every node is
// in the Raft configuration and sees every other by gossip.
func Start(t testing.TB, opts Options, regions ...string) *Cluster {
	t.Helper()
	c := &Cluster{t: t, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if testing.Verbose() {
		c.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	for _, r := range regions {
		c.Add(opts, r)
	}
	c.WaitServers(len(regions))
	return c
}

var (
	psk       = bytes.Repeat([]byte{0x5a}, 32)
	gossipKey = bytes.Repeat([]byte{0xa5}, 32)
)

// Add starts one more node in region; it joins the first node's gossip.
func (c *Cluster) Add(opts Options, region string) *Node {
	t := c.t
	t.Helper()
	n := &Node{Region: region, Dir: t.TempDir()}
	count := 1
	for _, o := range c.Nodes {
		if o.Region == region {
			count++
		}
	}
	n.Name = region + "-" + string(rune('0'+count))
	key, id, err := p2p.LoadOrCreateIdentity(filepath.Join(n.Dir, "p2p.key"))
	if err != nil {
		t.Fatal(err)
	}
	if n.Host, err = p2p.NewHost(p2p.Config{PrivateKey: key, PSK: psk}); err != nil {
		t.Fatal(err)
	}
	cs := chunkstore.DefaultConfig()
	cs.Dir = filepath.Join(n.Dir, "chunks")
	if n.Store, err = chunkstore.Open(cs, c.log); err != nil {
		t.Fatal(err)
	}
	p2p.ServeChunks(n.Host, n.Store, c.log)
	tr, err := p2p.NewRaftTransport(n.Host, c.log)
	if err != nil {
		t.Fatal(err)
	}
	cc := catalog.TestConfig(filepath.Join(n.Dir, "catalog"))
	cc.NodeID, cc.Bootstrap = id.String(), len(c.Nodes) == 0
	cc.MinVersion = func() int {
		if ctl := n.ctl.Load(); ctl != nil {
			return ctl.MinVersion()
		}
		return 1
	}
	if n.Catalog, err = catalog.Open(cc, catalog.Deps{Transport: tr, Host: n.Host, Log: c.log.With("node", n.Name)}); err != nil {
		t.Fatal(err)
	}
	var join []string
	if len(c.Nodes) > 0 {
		join = []string{c.Nodes[0].Cluster.GossipAddr()}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Catalog.WaitLeader(ctx); err != nil {
			t.Fatal(err)
		}
	}
	dead := opts.DeadVoterTimeout
	if dead == 0 {
		dead = 2 * time.Second
	}
	n.Cluster, err = cluster.New(cluster.Config{NodeName: n.Name, Region: region, Voter: true, Join: join, DataDir: n.Dir,
		Gossip: &cluster.GossipConfig{BindHost: "127.0.0.1", Key: gossipKey}, LAN: true, RejoinEvery: time.Second,
		DeadVoterTimeout: dead, Log: c.log.With("node", n.Name)},
		cluster.Deps{Host: n.Host, Catalog: n.Catalog})
	if err != nil {
		t.Fatal(err)
	}
	n.ctl.Store(n.Cluster)
	if err := n.Cluster.Start(); err != nil {
		t.Fatal(err)
	}
	c.Nodes = append(c.Nodes, n)
	t.Cleanup(n.Stop)
	return n
}

// WaitServers waits until the leader's Raft configuration has n servers and
// every running node sees every other running node by gossip.
func (c *Cluster) WaitServers(n int) {
	c.t.Helper()
	eventually.True(c.t, "the Raft configuration and gossip to hold every node", func() bool {
		l := c.Leader()
		if l == nil {
			return false
		}
		servers, err := l.Catalog.Servers()
		if err != nil || len(servers) != n {
			return false
		}
		running := c.Running()
		for _, nd := range running {
			if len(nd.Cluster.Members()) != len(running) {
				return false
			}
		}
		return true
	})
}

// Running lists the nodes not stopped.
func (c *Cluster) Running() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if !n.stopped {
			out = append(out, n)
		}
	}
	return out
}

// Leader is the running node that leads, or nil.
func (c *Cluster) Leader() *Node {
	for _, n := range c.Running() {
		if n.Catalog.IsLeader() {
			return n
		}
	}
	return nil
}

// Crash stops the node as a crash would: gossip without a leave, Raft
// without leaving the configuration.
func (n *Node) Crash() {
	if n.stopped {
		return
	}
	n.Cluster.Kill()
	n.Stop()
}

// Stop closes the node (its controller, catalog, host and store).
func (n *Node) Stop() {
	if n.stopped {
		return
	}
	n.stopped = true
	n.Cluster.Close()
	_ = n.Catalog.Close()
	_ = n.Host.Close()
	_ = n.Store.Close()
}

// CreateCache creates a cache through the current leader, again until it
// exists: a configuration change can move leadership under a create, which
// is not retried for its caller (it is not idempotent).
func (c *Cluster) CreateCache(name string) {
	c.t.Helper()
	eventually.True(c.t, "cache "+name, func() bool {
		l := c.Leader()
		if l == nil {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := l.Catalog.CreateCache(ctx, catalog.Cache{Name: nixid.CacheName(name), StoreDir: "/nix/store"})
		return err == nil || errors.Is(err, catalog.ErrCacheExists)
	})
}
