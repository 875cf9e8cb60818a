package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/replication/catalog"
	"github.com/garret-cache/garret/replication/membership"
)

// Config is the controller's part of [cluster].
type Config struct {
	NodeName string // gossip name; "" = the peer ID
	Region   string
	APIURL   string // this node's public HTTP URL, told to the others
	Voter    bool   // may hold a Raft vote
	Voters   int    // Raft voters the leader keeps: 3 or 5 (default 3)
	Join     []string
	// Gossip is nil on a node without gossip (a lone node).
	Gossip *GossipConfig
	// DataDir holds members.json, the address book for rejoining.
	DataDir string
	// LAN uses memberlist's LAN timings (in-process tests); default WAN.
	LAN bool
	// RejoinEvery is how often lost members are rejoined (default 5 s).
	RejoinEvery time.Duration
	// DeadVoterTimeout is how long gossip must have shown a voter gone
	// before the leader removes it from Raft (default 30 s).
	DeadVoterTimeout time.Duration
	Log              *slog.Logger
}

// GossipConfig is where memberlist listens and what it advertises.
type GossipConfig struct {
	BindHost      string
	BindPort      int
	AdvertiseHost string // "" = BindHost
	AdvertisePort int
	Key           []byte // memberlist's AES key, derived from the cluster secret
}

// Deps are the components the controller works through.
type Deps struct {
	Host    host.Host
	Catalog *catalog.Catalog
	// Replication asks a node (this one included) for its syncer's
	// status, for ClusterStatus; nil, or an error: not shown.
	Replication func(ctx context.Context, id string) (v1.ReplicationStatus, error)
	// Metrics is the node's registry: gossip's series (garret_gossip_*)
	// go there once gossip starts. Nil: not exported.
	Metrics prometheus.Registerer
}

// Controller keeps the Raft configuration in line with gossip and carries
// out admins' cluster requests. It is the only code that changes Raft
// membership, through the catalog's narrow methods (AddVoter, AddNonvoter,
// DemoteVoter, RemoveServer); its placement loop acts only on the leader.
type Controller struct {
	cfg         Config
	host        host.Host
	replication func(ctx context.Context, id string) (v1.ReplicationStatus, error)
	catalog     *catalog.Catalog
	log         *slog.Logger
	metrics     prometheus.Registerer

	members *membership.Membership // nil without gossip
	book    *peerBook              // gossip addresses of members, for rejoining
	changes chan struct{}          // gossip saw a join, leave or update
	// reconcileMu serialises voter placement; seenMu guards seen, what
	// gossip last said about each node and when it was last alive.
	reconcileMu sync.Mutex
	seenMu      sync.Mutex
	seen        map[string]seenNode
	leaving     chan struct{} // closed when an admin asked this node to leave
	leaveOnce   sync.Once
	cancel      context.CancelFunc
	wg          sync.WaitGroup
}

// New builds a controller; Start starts gossip and the loops.
func New(cfg Config, deps Deps) (*Controller, error) {
	if deps.Host == nil || deps.Catalog == nil {
		return nil, errors.New("cluster: a controller needs a host and a catalog")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Voters <= 0 {
		cfg.Voters = 3
	}
	if cfg.RejoinEvery <= 0 {
		cfg.RejoinEvery = 5 * time.Second
	}
	if cfg.DeadVoterTimeout <= 0 {
		cfg.DeadVoterTimeout = 30 * time.Second
	}
	return &Controller{cfg: cfg, host: deps.Host, catalog: deps.Catalog, replication: deps.Replication, log: cfg.Log,
		metrics: deps.Metrics,
		seen:    map[string]seenNode{}, leaving: make(chan struct{}), changes: make(chan struct{}, 1)}, nil
}

// Start joins gossip, when configured, and starts the placement and rejoin
// loops; without gossip there is nothing to run.
func (c *Controller) Start() error {
	if c.cfg.Gossip == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if err := c.startGossip(ctx); err != nil {
		cancel()
		return fmt.Errorf("cluster: gossip: %w", err)
	}
	return nil
}

// Gossiping reports whether this node runs gossip.
func (c *Controller) Gossiping() bool { return c.members != nil }

// Leave leaves gracefully (SIGTERM, `garret cluster leave`): out of gossip
// first, so the leader cannot add the node back after removing it, then out
// of Raft (a leader hands over first). If the Raft leave fails, the leader
// removes the node as a dead voter later.
func (c *Controller) Leave(ctx context.Context) {
	if c.members == nil {
		return
	}
	_ = c.members.Leave(2 * time.Second)
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.catalog.Leave(lctx); err != nil {
		c.log.Warn("leaving the Raft configuration failed", "err", err)
	}
}

// Close stops the loops and gossip (leaving it if Leave did not).
func (c *Controller) Close() {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	if c.members != nil {
		_ = c.members.Leave(0)
	}
}

// Kill stops gossip without leaving, as a crash would (tests).
func (c *Controller) Kill() {
	if c.members != nil {
		_ = c.members.Stop()
	}
}

// GossipAddr is the address other nodes join this one at ("" without
// gossip).
func (c *Controller) GossipAddr() string {
	if c.members == nil {
		return ""
	}
	return c.members.GossipAddr()
}
