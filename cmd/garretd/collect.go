package main

import (
	"context"
	"fmt"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/garret-cache/garret/internal/serverconfig"
	"github.com/garret-cache/garret/node"
	"github.com/garret-cache/garret/replication/gc"
)

// collect is --mode garbage-collector-once (one sweep, then exit) and
// garbage-collector (a sweep at once, then every [garbage-collection]
// interval until SIGINT or SIGTERM), over the data dir of a stopped node.
func collect(ctx context.Context, cfg *serverconfig.Config, once bool, log *slog.Logger) error {
	if !once && cfg.GC.Interval <= 0 {
		// As atticd: interval 0 turns periodic collection off.
		fmt.Println("[garbage-collection] interval is 0: periodic garbage collection is off (--mode garbage-collector-once still sweeps)")
		return nil
	}
	c, err := node.OpenCollector(node.Config{Server: cfg, Logger: log})
	if err != nil {
		return err
	}
	if !once {
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		log.Info("garbage collector started", "data_dir", cfg.DataDir, "interval", cfg.GC.Interval, "grace", gc.DefaultGrace)
		c.Run(ctx, cfg.GC.Interval)
		log.Info("garbage collector stopped")
		return c.Close()
	}
	r := c.Collect(ctx)
	if err := c.Close(); err != nil && r.Err == "" {
		return err
	}
	if r.Err != "" {
		return fmt.Errorf("garbage collection of %s did not complete: %s", cfg.DataDir, r.Err)
	}
	fmt.Printf("garbage collection of %s: %d objects expired; freed %d manifests, %d chunks, %d bytes (%s); %d segment files compacted, %s of disk given back\n",
		cfg.DataDir, r.ObjectsExpired, r.ManifestsDeleted, r.ChunksDeleted, r.BytesFreed, mib(r.BytesFreed), r.SegmentsCompacted, mib(r.DiskBytesFreed))
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
