package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/garret-cache/garret/api"
	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/internal/serverconfig"
	"github.com/garret-cache/garret/replication/catalog"
	"github.com/garret-cache/garret/replication/cluster"
	"github.com/garret-cache/garret/replication/gc"
	"github.com/garret-cache/garret/replication/p2p"
	"github.com/garret-cache/garret/replication/placement"
	"github.com/garret-cache/garret/replication/repair"
	"github.com/garret-cache/garret/replication/syncer"
)

// Config is what New needs besides the server.toml settings.
type Config struct {
	Server *serverconfig.Config
	Logger *slog.Logger
	// FastTimings cuts Raft timeouts to tens of milliseconds, for in-process
	// tests without emulated latency. Production keeps WAN timings.
	FastTimings bool
	// SweepGrace is how long an unreferenced chunk or manifest survives before
	// the GC sweep may delete it; longer than the longest upload and the
	// staging TTL. Default gc.DefaultGrace.
	SweepGrace time.Duration
	// AccessFlush is how often downloads are folded into the catalog for
	// retention. Default gc.DefaultAccessFlush.
	AccessFlush time.Duration
	// DeadVoterTimeout is how long gossip must have shown a voter gone
	// before the leader removes it from Raft and gives its vote to a live
	// non-voter. Default 30s.
	DeadVoterTimeout time.Duration
	// MemoryLimit is the Go runtime's soft memory limit for all but the
	// block caches of the chunk index and the catalog: the node keeps the
	// runtime's limit at MemoryLimit plus what those caches hold (see
	// memory.go). 0 leaves the runtime's limit alone (GOMEMLIMIT set).
	MemoryLimit int64
}

// NodeSecretFile, in the data dir, holds a lone node's own secret (a node
// without [cluster] secret): its libp2p private-network key comes from it.
const NodeSecretFile = "node.secret"

// ScrubStateFile, in the data dir, holds the time of the last complete
// scrub, so the periodic one keeps its interval across restarts.
const ScrubStateFile = "scrub.last"

// Node is one running garretd: the components, wired.
type Node struct {
	cfg     Config
	plan    *plan
	log     *slog.Logger
	store   *chunkstore.Store
	host    host.Host
	catalog *catalog.Catalog
	cluster *cluster.Controller
	// ctl is cluster for the catalog's proposals, which may run on other
	// goroutines (forwarded writes) while New is still building.
	ctl      atomic.Pointer[cluster.Controller]
	syncer   atomic.Pointer[syncer.Syncer] // set once the syncer runs (a cluster node with sync)
	metrics  *registry                     // served at /metrics; components register their series here
	api      *api.Server
	http     *http.Server
	listener net.Listener
	stopBG   context.CancelFunc // stops the syncer and the GC loop
	wg       sync.WaitGroup
	// gcRuns records this node's recent garbage collection passes.
	gcRuns    gc.History
	collector *gc.Collector
}

// withDefaults checks that cfg has a server config and fills in the rest.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Server == nil {
		return cfg, errors.New("node: no server config")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SweepGrace <= 0 {
		cfg.SweepGrace = gc.DefaultGrace
	}
	if cfg.DeadVoterTimeout <= 0 {
		cfg.DeadVoterTimeout = 30 * time.Second
	}
	return cfg, nil
}

// New builds and starts a node. On failure it stops what it started.
// Every component config is checked first (see CheckConfig), so a bad config
// fails before the data dir is touched.
func New(cfg Config) (_ *Node, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return nil, err
	}
	sc := cfg.Server
	// 0. Every component config, checked before anything is created.
	p, err := newPlan(cfg)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, plan: p, log: cfg.Logger}
	defer func() {
		if err != nil {
			n.close()
		}
	}()

	// 1. Data dir and the node's stable libp2p identity (its Raft ServerID).
	if err := os.MkdirAll(sc.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: data dir: %w", err)
	}
	key, id, err := p2p.LoadOrCreateIdentity(filepath.Join(sc.DataDir, "p2p.key"))
	if err != nil {
		return nil, fmt.Errorf("node: identity: %w", err)
	}

	// 2. Local chunk store. Every component registers its series on the
	// node's registry, which the API serves at /metrics.
	n.metrics = newRegistry()
	n.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	p.store.Metrics = n.metrics
	if n.store, err = chunkstore.Open(p.store, n.log.With("component", "chunkstore")); errors.Is(err, chunkstore.ErrInUse) {
		return nil, fmt.Errorf("%w: another garretd process (a node or a garbage collector) holds %s", ErrDataDirInUse, sc.DataDir)
	} else if err != nil {
		return nil, fmt.Errorf("node: chunk store: %w", err)
	}

	// 3. libp2p host: carries Raft (and, in a cluster, chunk exchange),
	// inside the private network of the cluster secret, or of a lone node's
	// own secret, so nobody without it can open a stream.
	hc := p.host
	hc.PrivateKey, hc.Metrics = key, n.metrics
	if hc.PSK == nil {
		secret, err := p2p.LoadOrCreateSecret(filepath.Join(sc.DataDir, NodeSecretFile))
		if err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		if hc.PSK, err = p2p.DeriveKey(secret, p2p.LabelPNet); err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
	}
	if n.host, err = p2p.NewHost(hc); err != nil {
		return nil, fmt.Errorf("node: p2p host: %w", err)
	}
	tr, err := p2p.NewRaftTransport(n.host, n.log.With("component", "raft-transport"))
	if err != nil {
		return nil, fmt.Errorf("node: raft transport: %w", err)
	}

	// 4. Raft catalog; a lone node bootstraps itself the first time only.
	cc := p.catalog
	cc.NodeID = id.String()
	cc.MinVersion = n.minVersion // new command types wait until every server knows them
	// With the host, followers send writes to the leader over libp2p and
	// the catalog serves other nodes' forwarded writes, leaves and removals.
	if n.catalog, err = catalog.Open(cc, catalog.Deps{Transport: tr, Host: n.host, Log: n.log.With("component", "catalog"), Metrics: n.metrics}); err != nil {
		return nil, fmt.Errorf("node: catalog: %w", err)
	}
	if cc.Bootstrap {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := n.catalog.WaitLeader(ctx); err != nil {
			return nil, fmt.Errorf("node: catalog has no leader: %w", err)
		}
		if n.catalog.IsLeader() {
			if _, err := n.catalog.EnsureClusterID(ctx); err != nil {
				return nil, fmt.Errorf("node: cluster id: %w", err)
			}
		}
	}

	// 5. The cluster controller (gossip, Raft membership, admin requests);
	// it tells other nodes this node's API URL, so the listener comes first.
	if n.listener, err = net.Listen("tcp", sc.Listen); err != nil {
		return nil, fmt.Errorf("node: listen on %s: %w", sc.Listen, err)
	}
	cl := p.cluster
	cl.Log, cl.APIURL = n.log.With("component", "cluster"), orDefault(cl.APIURL, n.URL())
	if n.cluster, err = cluster.New(cl, cluster.Deps{Host: n.host, Catalog: n.catalog, Replication: n.replicationStatus,
		Metrics: n.metrics}); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.ctl.Store(n.cluster)

	// 6. The HTTP API, with the peers it reads NARs and staged uploads from
	// (and repairs bad chunks from: the scrubber's copies go through the
	// same fetcher).
	failures := p2p.NewPeerFailures()
	n.metrics.MustRegister(failures)
	fetcher := &p2p.Fetcher{Host: n.host, Store: n.store, Peers: n.cluster.PeersByDistance, Log: n.log.With("component", "fetch"),
		Failures: failures}
	limit := syncer.NewLimit(syncer.DefaultBytesInFlight) // every copy of this node together
	var acker api.Durability
	if p.ack.Copies > 0 {
		// Pushes wait for their copies; every cluster node takes copies.
		ac := p.ack
		ac.Log = n.log.With("component", "ack")
		a := syncer.NewAcker(ac, syncer.AckDeps{Host: n.host, Self: placement.Node{ID: id.String(), Region: p.cluster.Region},
			Peers: n.cluster.PlacementPeers, Local: &syncer.Copier{Store: n.store, Fetcher: fetcher, Limit: limit}})
		n.metrics.MustRegister(a.Collectors()...)
		acker = a
		syncer.ServeCopies(n.host, n.store, fetcher, limit, func(p peer.ID) bool { return n.catalog.IsServer(p.String()) },
			n.log.With("component", "copies"))
	}
	name := orDefault(p.cluster.NodeName, id.String()) // as the scrub, GC and the pages report it
	scfg, sdeps := p.scrub, repair.Deps{Store: n.store}
	scfg.Node, scfg.Log, scfg.Metrics = name, n.log.With("component", "scrub"), n.metrics
	if p.cluster.Gossip != nil { // a lone node has no peers to repair from
		sdeps.Copier = &syncer.Copier{Store: n.store, Fetcher: fetcher, Limit: limit}
	}
	scrubber, err := repair.New(scfg, sdeps)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	// Garbage collection: every node folds the downloads it serves into the
	// catalog and sweeps its own store; the leader runs retention.
	gcLog := n.log.With("component", "gc")
	retention := &gc.Retention{Catalog: n.catalog, Default: sc.GC.DefaultRetentionPeriod}
	n.collector = &gc.Collector{
		Sweeper: &gc.Sweeper{Store: n.store, Manifests: n.catalog.ForEachManifest, Current: n.catalog.ConfirmCurrent,
			Grace: cfg.SweepGrace},
		Accesses: &gc.Accesses{Touch: n.catalog.TouchObjects, Log: gcLog, PeriodOf: func(cache nixid.CacheName) time.Duration {
			c, err := n.catalog.Cache(cache) // kept decoded: cheap on every download
			if err != nil {
				return 0
			}
			return retention.Period(c)
		}},
		Retention: retention,
		Leads:     n.catalog.IsLeader,
		History:   &n.gcRuns, Node: name, Log: gcLog,
	}
	if err := n.collector.Register(n.metrics); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	p.api.NodeName, p.api.Region = name, p.cluster.Region
	n.api = api.New(p.api, api.Deps{
		Catalog: n.catalog, Store: n.store, Tokens: p.tokens, Log: n.log, Metrics: n.metrics,
		Cluster:     n.cluster,
		Copies:      acker,
		Fetcher:     fetcher,
		PeerStaging: &p2p.StagedFinder{Host: n.host, Peers: n.cluster.PeersByDistance},
		Readiness:   n.cluster.Ready,
		DiskFloor:   &p.floor,
		Scrubber:    scrubber,
		Downloads:   n.collector.Accesses,
		Collector:   n.collector,
		Signer:      p.tokens,
		GCRuns:      n.gcRuns.Runs,
	})
	p2p.ServeChunks(n.host, n.store, n.log.With("component", "chunks"))
	p2p.ServeStaged(n.host, n.api.LookupStaged) // Nix's NAR PUT here, its narinfo PUT elsewhere
	n.http = &http.Server{
		Handler:           n.api.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		MaxHeaderBytes:    1 << 20, // the API itself answers 431 past api.MaxHeaderBytes
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.http.Serve(n.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http server stopped", "err", err)
		}
	}()

	// 7. Gossip and the controller's loops (when configured), the syncer
	// (a cluster node copies what placement gives it), the periodic scrub,
	// then the periodic GC sweep.
	if err := n.cluster.Start(); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	bg, stopBG := context.WithCancel(context.Background())
	n.stopBG = stopBG
	if p.sync {
		syc := p.syncer
		syc.Log = n.log.With("component", "syncer")
		sy, err := syncer.New(syc, syncer.Deps{Catalog: n.catalog, Store: n.store, Fetcher: fetcher,
			Self: placement.Node{ID: id.String(), Region: p.cluster.Region}, Members: n.cluster.PlacementNodes, Limit: limit})
		if err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		n.metrics.MustRegister(sy.Collector())
		sy.ServeStatus(n.host)
		n.syncer.Store(sy)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := sy.Run(bg); err != nil && bg.Err() == nil {
				n.log.Error("syncer stopped", "err", err)
			}
		}()
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		scrubber.Run(bg) // every [cluster] scrub-interval; returns at once when it is 0
	}()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.collector.Accesses.Run(bg, cfg.AccessFlush) // on every node: a download anywhere counts
	}()
	if cfg.MemoryLimit > 0 {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			governMemory(bg, cfg.MemoryLimit, memoryEvery, n.cacheBytes)
		}()
	}
	if sc.GC.Interval > 0 {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.collector.Run(bg, sc.GC.Interval, false)
		}()
	}
	n.log.Info("node started", "listen", n.Addr(), "node_id", id.String(), "data_dir", sc.DataDir)
	return n, nil
}

// minVersion is the oldest command version in the cluster, once the
// controller runs; before, this node only proposes its cluster id.
func (n *Node) minVersion() int {
	if c := n.ctl.Load(); c != nil {
		return c.MinVersion()
	}
	return 1
}

// replicationStatus is node id's syncer status: this node's own, or asked
// over libp2p (an error from a node that does not sync).
func (n *Node) replicationStatus(ctx context.Context, id string) (v1.ReplicationStatus, error) {
	if id == n.host.ID().String() {
		sy := n.syncer.Load()
		if sy == nil {
			return v1.ReplicationStatus{}, errors.New("node: this node does not sync")
		}
		return sy.Status(), nil
	}
	return syncer.QueryStatus(ctx, n.host, id)
}

// Addr is the address the HTTP API listens on.
func (n *Node) Addr() string { return n.listener.Addr().String() }

// URL is the HTTP base URL of the API, with a trailing slash.
func (n *Node) URL() string { return "http://" + n.Addr() + "/" }

// Catalog exposes the node's catalog (for tests and admin tools).
func (n *Node) Catalog() *catalog.Catalog { return n.catalog }

// Store exposes the node's chunk store (for tests and admin tools).
func (n *Node) Store() *chunkstore.Store { return n.store }

// Done is closed when an admin asked this node to leave; garretd then
// calls Shutdown and exits.
func (n *Node) Done() <-chan struct{} { return n.cluster.Done() }

// Shutdown leaves the cluster (gossip, then Raft), stops accepting
// requests and drains them, then stops the GC, the controller, the catalog
// (after the API, which writes to it), the host and the store.
func (n *Node) Shutdown(ctx context.Context) error {
	var errs []error
	if n.collector != nil {
		// The downloads served since the last flush, while this node is
		// still a member the leader takes writes from.
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := n.collector.Accesses.Flush(fctx); err != nil {
			n.log.Warn("download times not folded into the catalog before stopping", "pending", n.collector.Accesses.Pending(), "err", err)
		}
		cancel()
	}
	if n.cluster != nil {
		n.cluster.Leave(ctx) // SIGTERM and `garret cluster leave` leave gracefully
	}
	if n.http != nil {
		errs = append(errs, n.http.Shutdown(ctx))
	}
	errs = append(errs, n.close())
	return errors.Join(errs...)
}

// close releases everything in reverse order of construction.
func (n *Node) close() error {
	var errs []error
	if n.stopBG != nil {
		n.stopBG()
	}
	if n.http != nil {
		_ = n.http.Close()
	} else if n.listener != nil {
		_ = n.listener.Close()
	}
	n.wg.Wait()
	if n.cluster != nil {
		n.cluster.Close()
	}
	if n.catalog != nil {
		errs = append(errs, n.catalog.Close())
	}
	if n.host != nil {
		errs = append(errs, n.host.Close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	return errors.Join(errs...)
}
