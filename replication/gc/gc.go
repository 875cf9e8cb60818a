// Package gc collects a node's garbage. Each pass (Collector) folds the
// NAR downloads this node served into the catalog (Accesses), lets the Raft
// leader remove the objects unused within their cache's retention period
// (Retention), and sweeps the local chunk store (chunkstore.Sweep) against
// the manifests the catalog still references, on a running node only once
// its catalog is confirmed current. garretd --mode garbage-collector[-once]
// runs the same pass over a stopped lone node's data dir. See
// replication/DESIGN.md, "Retention and garbage collection".
package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/chunkstore"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultGrace is how long an unreferenced chunk or manifest survives
// before a sweep may delete it: longer than the staging TTL (1 h) and than
// any wait between the end of an upload and its catalog commit (uploads in
// progress are held by the chunk store, however long they run).
const DefaultGrace = 6 * time.Hour

// ErrCatalogNotCurrent means a sweep was skipped because this node could
// not confirm that its catalog has everything the cluster committed.
var ErrCatalogNotCurrent = errors.New("gc: sweep skipped: the catalog is not known to be current")

// currentTimeout bounds how long a sweep spends confirming its catalog.
const currentTimeout = 10 * time.Second

// Sweeper sweeps one chunk store against one manifest set.
type Sweeper struct {
	Store *chunkstore.Store
	// Manifests visits every manifest the catalog references.
	Manifests func(func(chunkstore.ManifestID) error) error
	// Current confirms the catalog holds all the cluster committed
	// (catalog.ConfirmCurrent); nil for a stopped lone node's data dir.
	Current func(context.Context) error
	Grace   time.Duration // default DefaultGrace
}

// Sweep deletes local chunks and manifests that no catalog object or file
// references and that are older than the grace period. Liveness is
// recomputed from the catalog each time: there are no reference counts for
// a crash to leak. With Current set it sweeps only with a catalog confirmed
// current, and otherwise fails with ErrCatalogNotCurrent, deleting nothing.
func (s *Sweeper) Sweep(ctx context.Context) (chunkstore.SweepStats, error) {
	if s.Current != nil {
		cctx, cancel := context.WithTimeout(ctx, currentTimeout)
		err := s.Current(cctx)
		cancel()
		if err != nil {
			return chunkstore.SweepStats{}, fmt.Errorf("%w: %v", ErrCatalogNotCurrent, err)
		}
	}
	live := make(map[chunkstore.ManifestID]struct{})
	if err := s.Manifests(func(id chunkstore.ManifestID) error {
		live[id] = struct{}{}
		return nil
	}); err != nil {
		return chunkstore.SweepStats{}, err
	}
	grace := s.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	return s.Store.Sweep(ctx, func(id chunkstore.ManifestID) bool {
		_, ok := live[id]
		return ok
	}, grace)
}

// Collector is a node's garbage collection. Each pass folds the downloads
// this node served into the catalog, runs retention if this node leads (so
// the cluster expires each object once), and sweeps the local chunk store
// against the catalog. Every node runs one; a stopped lone node's data dir
// gets the same from garretd --mode garbage-collector[-once].
type Collector struct {
	Sweeper *Sweeper
	// Accesses and Retention are optional; Leads says whether this node
	// runs retention (nil: always, for a stopped lone node's collector).
	Accesses  *Accesses
	Retention *Retention
	Leads     func() bool
	History   *History // nil: runs are not kept
	Node      string   // this node's name, in CollectNow's answer
	Log       *slog.Logger
	metrics   *metrics
	passing   sync.Mutex // one pass at a time (the loop's, or one asked for)
}

// CollectNow runs a pass (POST /_api/v1/cluster/gc) and reports it, or
// why it did not complete.
func (c *Collector) CollectNow(ctx context.Context) (v1.ClusterGCResponse, error) {
	r := c.Pass(ctx)
	if r.Err != "" {
		return v1.ClusterGCResponse{}, errors.New(r.Err)
	}
	return v1.ClusterGCResponse{Node: c.Node, ObjectsExpired: r.ObjectsExpired, ManifestsDeleted: r.ManifestsDeleted,
		ChunksDeleted: r.ChunksDeleted, BytesFreed: r.BytesFreed, SegmentsCompacted: r.SegmentsCompacted,
		DiskBytesFreed: r.DiskBytesFreed, TookMs: r.Duration.Milliseconds()}, nil
}

// Register exports the collector's series (garret_gc_*) on reg; call it
// once, before Run.
func (c *Collector) Register(reg prometheus.Registerer) error {
	m, err := newMetrics(reg)
	if err != nil {
		return err
	}
	c.metrics = m
	if c.Accesses != nil {
		c.Accesses.mu.Lock()
		c.Accesses.metrics = m
		c.Accesses.mu.Unlock()
	}
	return nil
}

// Pass runs one pass and reports it (also to History, the metrics and the
// log). A retention failure does not stop the sweep.
func (c *Collector) Pass(ctx context.Context) Run {
	c.passing.Lock()
	defer c.passing.Unlock()
	r := Run{Started: time.Now()}
	var errs []error
	if c.Accesses != nil {
		// Best effort: what is not folded now stays pending.
		_ = c.Accesses.Flush(ctx)
	}
	if c.Retention != nil && (c.Leads == nil || c.Leads()) {
		n, err := c.Retention.Expire(ctx)
		r.ObjectsExpired = n
		if err != nil {
			errs = append(errs, err)
		}
	}
	st, err := c.Sweeper.Sweep(ctx)
	r.SweepStats = st
	if err != nil {
		r.Skipped = errors.Is(err, ErrCatalogNotCurrent)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		r.Err = err.Error()
	}
	r.Duration = time.Since(r.Started)
	c.History.Add(r)
	c.metrics.record(r)
	c.logPass(r)
	return r
}

// Run runs a pass every interval until ctx is done (at once first, if
// now).
func (c *Collector) Run(ctx context.Context, every time.Duration, now bool) {
	if now {
		c.Pass(ctx)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Pass(ctx)
		}
	}
}

func (c *Collector) logPass(r Run) {
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	attrs := []any{"objects_expired", r.ObjectsExpired, "manifests_deleted", r.ManifestsDeleted, "chunks_deleted", r.ChunksDeleted,
		"bytes_freed", r.BytesFreed, "disk_bytes_freed", r.DiskBytesFreed, "duration", r.Duration.Round(time.Millisecond)}
	switch {
	case r.Skipped:
		log.Warn("gc sweep skipped, deleting nothing: the catalog could not be confirmed current", append(attrs, "err", r.Err)...)
	case r.Err != "":
		log.Warn("gc pass failed", append(attrs, "err", r.Err)...)
	default:
		log.Info("gc pass", attrs...)
	}
}
