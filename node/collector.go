package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/serverconfig"
	"github.com/garret-cache/garret/replication/catalog"
	"github.com/garret-cache/garret/replication/cluster"
	"github.com/garret-cache/garret/replication/gc"
	"github.com/garret-cache/garret/replication/p2p"
	"github.com/hashicorp/raft"
)

// ErrDataDirInUse means another garretd holds the data dir.
var ErrDataDirInUse = errors.New("node: data dir in use")

// ErrClusterDataDir means the data dir belongs to a node of a multi-node
// cluster, which only the running node may sweep.
var ErrClusterDataDir = errors.New("node: data dir of a cluster node")

// Collector is the garbage collection of a node that is not running
// (garretd --mode garbage-collector and garbage-collector-once): the same
// pass as a running node's, retention included, over its chunk store and
// its catalog, without the HTTP API, gossip or libp2p. Only a lone node's
// data dir qualifies (see loneNode); its Raft runs on an in-memory
// transport, where it is the only voter and so elects itself. It holds the
// data dir while open, so a node cannot start meanwhile.
type Collector struct {
	dir     string
	log     *slog.Logger
	store   *chunkstore.Store
	catalog *catalog.Catalog
	gc      *gc.Collector
}

// OpenCollector opens the data dir of cfg.Server for collection. It fails
// with ErrDataDirInUse (wrapped, in one line that says why it is not
// needed) if a running garretd holds the data dir, with ErrClusterDataDir
// for a cluster node's, and if the data dir holds no node.
func OpenCollector(cfg Config) (_ *Collector, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return nil, err
	}
	p, err := newPlan(cfg)
	if err != nil {
		return nil, err
	}
	dir := cfg.Server.DataDir
	if err := loneNode(cfg.Server); err != nil {
		return nil, err
	}
	// Both must exist: sweeping chunks against a missing catalog would
	// delete every one of them.
	for _, part := range []string{filepath.Join(p.store.Dir, "index"), filepath.Join(p.catalog.Dir, "fsm"), filepath.Join(dir, "p2p.key")} {
		if _, err := os.Stat(part); err != nil {
			return nil, fmt.Errorf("node: data dir %s holds no node (%v): has garretd run with this data-dir?", dir, err)
		}
	}
	c := &Collector{dir: dir, log: cfg.Logger.With("component", "gc")}
	// The chunk store first, as New opens it first: whoever takes its lock
	// keeps the other out for as long as it runs.
	if c.store, err = chunkstore.Open(p.store, c.log); errors.Is(err, chunkstore.ErrInUse) {
		return nil, inUse(dir, cfg.Server.GC.Interval)
	} else if err != nil {
		return nil, fmt.Errorf("node: chunk store: %w", err)
	}
	defer func() {
		if err != nil {
			_ = c.Close()
		}
	}()
	_, id, err := p2p.LoadOrCreateIdentity(filepath.Join(dir, "p2p.key"))
	if err != nil {
		return nil, fmt.Errorf("node: identity: %w", err)
	}
	cc := p.catalog
	cc.NodeID, cc.Bootstrap = id.String(), false
	// The only voter: there is no peer to wait for, so elect at once.
	cc.HeartbeatTimeout, cc.ElectionTimeout, cc.LeaderLeaseTimeout = 200*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
	_, tr := raft.NewInmemTransport("")
	if c.catalog, err = catalog.Open(cc, catalog.Deps{Transport: tr, Log: c.log}); err != nil {
		return nil, fmt.Errorf("node: catalog: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.catalog.WaitLeader(ctx); err != nil || !c.catalog.IsLeader() {
		return nil, fmt.Errorf("node: the catalog of %s did not elect this node (%v): is it a lone node's data dir?", dir, err)
	}
	c.gc = &gc.Collector{
		Sweeper:   &gc.Sweeper{Store: c.store, Manifests: c.catalog.ForEachManifest, Grace: cfg.SweepGrace},
		Retention: &gc.Retention{Catalog: c.catalog, Default: cfg.Server.GC.DefaultRetentionPeriod},
		Log:       c.log,
	}
	return c, nil
}

// loneNode refuses the data dir of a node that is, or was, part of a
// multi-node cluster: a stopped node cannot know what the cluster committed
// since it stopped (a path pushed elsewhere may reference chunks it holds),
// and a running node sweeps only after the leader confirms its catalog is
// current. The signs: [cluster] gossip-listen or join in its config, or
// other members in its members.json address book.
func loneNode(sc *serverconfig.Config) error {
	dir := sc.DataDir
	if cc := sc.Cluster; cc.GossipListen != "" || len(cc.Join) > 0 {
		return fmt.Errorf("%w: %s belongs to a cluster node ([cluster] gossip-listen or join is set): offline, its catalog may lack what the cluster committed since it stopped, so only the running node sweeps it (every [garbage-collection] interval, once the leader confirms its catalog)", ErrClusterDataDir, dir)
	}
	if others := cluster.RememberedMembers(dir); others > 0 {
		return fmt.Errorf("%w: %s belongs to a node of a cluster (its members.json lists %d other members): offline, its catalog may lack what the cluster committed since it stopped, so only the running node sweeps it (every [garbage-collection] interval, once the leader confirms its catalog)", ErrClusterDataDir, dir, others)
	}
	return nil
}

// inUse explains in one line why the data dir cannot be swept from outside.
func inUse(dir string, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("%w: %s is held by a running garretd; with [garbage-collection] interval = 0 it does not sweep, so stop it (or set an interval) to collect", ErrDataDirInUse, dir)
	}
	return fmt.Errorf("%w: %s is held by a running garretd, and a running node already sweeps its data dir every [garbage-collection] interval (%s)", ErrDataDirInUse, dir, interval)
}

// Collect runs one pass: retention removes the objects unused within
// their cache's period, then manifests no object or file references and
// chunks no remaining manifest references, older than the grace period, are
// deleted. The run reports what went; Err says why it did not complete.
func (c *Collector) Collect(ctx context.Context) gc.Run {
	return c.gc.Pass(ctx)
}

// Run collects at once, then every interval until ctx is done (Attic's
// garbage-collector mode), logging each pass as a node does.
func (c *Collector) Run(ctx context.Context, every time.Duration) {
	c.gc.Run(ctx, every, true)
}

// Close releases the data dir.
func (c *Collector) Close() error {
	var errs []error
	if c.catalog != nil {
		errs = append(errs, c.catalog.Close())
	}
	return errors.Join(append(errs, c.store.Close())...)
}
