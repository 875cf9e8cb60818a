package catalog

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/garret-cache/garret/internal/logbridge"
)

// Config configures the catalog.
type Config struct {
	Dir       string // raft log, snapshots and FSM state live under it
	NodeID    string // the node's peer ID: Raft ServerID and ServerAddress
	Bootstrap bool   // bootstrap a one-node cluster when there is no Raft state

	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout, CommitTimeout time.Duration
	SnapshotInterval                                                     time.Duration
	SnapshotThreshold, TrailingLogs                                      uint64
	// JoinSnapshotGap: entries past the latest snapshot that make the
	// leader take a fresh one before adding a new server (0: never).
	JoinSnapshotGap uint64

	BatchDelay time.Duration // how long a proposal waits for company, at least (batchDelay: up to 10× with slow commits)
	MaxBatch   int           // commands per log entry

	// HoldTimeout is how long a write waits for a leader to be elected
	// before it fails (see hold.go); QuorumProbeTimeout bounds the ping of
	// each voter that tells a node cut off from the majority to stop waiting.
	HoldTimeout, QuorumProbeTimeout time.Duration
	// MinVersion is the oldest CommandVersion among the Raft servers (the
	// cluster controller's view from gossip); nil: every node is this
	// build. See CommandVersion.
	MinVersion func() int

	// stateFS is the file system of the FSM's pebble state (nil: the
	// OS's); tests give a crashable one.
	stateFS vfs.FS
}

// DefaultConfig has WAN timings: followers wait 2 s without a heartbeat
// (sent every ~200 ms) before an election, so a 150 ms inter-region RTT
// leaves a wide margin; the lease (1 s) keeps a partitioned leader from
// serving as leader for long.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout: 2 * time.Second, ElectionTimeout: 2 * time.Second,
		LeaderLeaseTimeout: time.Second, CommitTimeout: 50 * time.Millisecond,
		SnapshotInterval: 2 * time.Minute, SnapshotThreshold: 8192, TrailingLogs: 10240, JoinSnapshotGap: 2048,
		BatchDelay: 2 * time.Millisecond, MaxBatch: 256,
		// Elections after a leader's death take 3.6–4.8 s at 150 ms RTT
		// (e2e); a ping across regions answers in 2 RTT plus a dial.
		HoldTimeout: 15 * time.Second, QuorumProbeTimeout: 1500 * time.Millisecond,
	}
}

// TestConfig has timeouts of tens of milliseconds for in-process tests
// without emulated latency.
func TestConfig(dir string) Config {
	c := DefaultConfig()
	c.Dir = dir
	c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, c.CommitTimeout = 100*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond, 5*time.Millisecond
	c.HoldTimeout, c.QuorumProbeTimeout = 3*time.Second, 300*time.Millisecond
	return c
}

// Validate checks the config.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("catalog: no Dir")
	case c.NodeID == "":
		return errors.New("catalog: no NodeID")
	case c.MaxBatch < 1:
		return errors.New("catalog: MaxBatch < 1")
	case c.HoldTimeout < 0 || c.QuorumProbeTimeout <= 0:
		return errors.New("catalog: HoldTimeout < 0 or QuorumProbeTimeout <= 0")
	}
	return nil
}

// Catalog is the replicated catalog of one node.
type Catalog struct {
	cfg       Config
	log       *slog.Logger
	raft      *raft.Raft
	wal       *wal.WAL
	fsm       *fsm
	host      host.Host // Deps.Host: nil on a catalog that talks to no other node
	metrics   *metrics
	probe     voterProbe
	proposals chan proposal
	inFlight  atomic.Int64 // entries the batcher submitted and Raft has not yet answered
	// commitTime is a moving average of the entries' commit times, in ns
	// (batchDelay).
	commitTime atomic.Int64
	stop       chan struct{}
	wg         sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error
}

// Deps are what the catalog works through, given at construction.
type Deps struct {
	// Transport carries Raft (p2p.NewRaftTransport); required.
	Transport raft.Transport
	// Host, when set, serves the catalog's protocols to other nodes
	// (forwarded writes, leave, remove, progress) and is how this node
	// forwards its own writes to the leader. nil: a catalog alone.
	Host host.Host
	Log  *slog.Logger
	// Metrics is the node's registry (nil: no series exported).
	Metrics prometheus.Registerer
}

// Open starts Raft on the transport, bootstrapping a one-node cluster only
// when cfg.Bootstrap is set and the data dir has no Raft state at all.
func Open(cfg Config, deps Deps) (_ *Catalog, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tr, log := deps.Transport, deps.Log
	if tr == nil {
		return nil, errors.New("catalog: no Raft transport")
	}
	if log == nil {
		log = slog.Default()
	}
	raftDir := filepath.Join(cfg.Dir, "raft")
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	c := &Catalog{cfg: cfg, log: log, proposals: make(chan proposal, 1024), stop: make(chan struct{})}
	st, err := openStateOn(filepath.Join(cfg.Dir, "fsm"), log, cfg.stateFS)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if c.wal != nil {
				_ = c.wal.Close()
			}
			_ = st.close()
		}
	}()
	if c.metrics, err = newMetrics(deps.Metrics, c); err != nil {
		_ = st.close()
		return nil, err
	}
	c.fsm = &fsm{st: st, log: log, stop: c.stop, metrics: c.metrics}
	if cfg.MinVersion != nil {
		c.fsm.oldSnapshots = func() bool { return cfg.MinVersion() < snapshotV2Since }
	}
	idx, err := appliedIndex(st.db)
	if err != nil {
		return nil, err
	}
	c.fsm.applied.Store(idx)
	if c.wal, err = wal.Open(raftDir); err != nil {
		return nil, fmt.Errorf("catalog: raft log: %w", err)
	}
	hl := logbridge.HCLog(log, "raft")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hl)
	if err != nil {
		return nil, fmt.Errorf("catalog: snapshots: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout, rc.ElectionTimeout = cfg.HeartbeatTimeout, cfg.ElectionTimeout
	rc.LeaderLeaseTimeout, rc.CommitTimeout = cfg.LeaderLeaseTimeout, cfg.CommitTimeout
	rc.SnapshotInterval, rc.SnapshotThreshold, rc.TrailingLogs = cfg.SnapshotInterval, cfg.SnapshotThreshold, cfg.TrailingLogs
	rc.NoSnapshotRestoreOnStart = true // the FSM is persistent; see DESIGN.md
	rc.Logger = hl
	has, err := raft.HasExistingState(c.wal, c.wal, snaps)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if cfg.Bootstrap && !has {
		conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: tr.LocalAddr()}}}
		if err := raft.BootstrapCluster(rc, c.wal, c.wal, snaps, tr, conf); err != nil {
			return nil, fmt.Errorf("catalog: bootstrap: %w", err)
		}
		log.Info("bootstrapped a new one-node cluster", "node_id", cfg.NodeID)
	}
	if c.raft, err = raft.NewRaft(rc, c.fsm, c.wal, c.wal, snaps, tr); err != nil {
		return nil, fmt.Errorf("catalog: raft: %w", err)
	}
	c.wg.Add(1)
	go c.batcher()
	if deps.Host != nil {
		c.serveOn(deps.Host)
	}
	return c, nil
}

// IsLeader reports whether this node leads.
func (c *Catalog) IsLeader() bool { return c.raft.State() == raft.Leader }

// AppliedIndex is the last log index applied to the local state.
func (c *Catalog) AppliedIndex() uint64 { return c.fsm.applied.Load() }

// CacheBytes is what the state's block cache holds now: on the Go heap
// without cgo, so the node counts it when it sets the soft memory limit.
func (c *Catalog) CacheBytes() int64 { return c.fsm.st.cacheBytes() }

// Close stops proposing, shuts Raft down and closes the stores.
func (c *Catalog) Close() error {
	c.closeOnce.Do(func() {
		close(c.stop)
		c.wg.Wait()
		if c.host != nil {
			c.host.RemoveStreamHandler(ForwardProtocol)
			c.host.RemoveStreamHandler(LeaveProtocol)
			c.host.RemoveStreamHandler(RemoveProtocol)
			c.host.RemoveStreamHandler(ProgressProtocol)
		}
		errs := []error{c.raft.Shutdown().Error()}
		errs = append(errs, c.wal.Close(), c.fsm.st.close())
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// Ready reports whether the node knows a leader and has applied everything
// it knows to be committed, and its state store takes writes.
func (c *Catalog) Ready() error {
	if err := c.fsm.stalledErr(); err != nil {
		return fmt.Errorf("catalog: cannot write its state (%v); waiting to retry", err)
	}
	if addr, _ := c.raft.LeaderWithID(); addr == "" {
		return errors.New("catalog: no leader known")
	}
	// Raft's applied index counts configuration and no-op entries too.
	if applied, commit := c.raft.AppliedIndex(), c.raft.CommitIndex(); applied < commit {
		return fmt.Errorf("catalog: catching up (applied %d of %d)", applied, commit)
	}
	return nil
}
