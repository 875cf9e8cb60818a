package node

import (
	"context"
	"runtime/debug"
	"time"
)

// The soft memory limit and the block caches. garretd runs the Go
// runtime with a soft memory limit (cmd/garretd's default, 96 MiB), so the
// garbage collector works harder as the heap nears it and a node stays
// under its RSS budget during concurrent pushes. In the pure-Go build
// pebble allocates its block caches on the Go heap. With a small catalog
// they hold little; with a large one the catalog's (32 MiB) and the chunk
// index's (64 MiB) fill, the live heap reaches the limit, and the collector
// runs back to back: at 3·10⁵ paths a node spent over half its CPU marking,
// and a narinfo's p99 at one connection was 5–6 ms for a p50 of 0.2 ms.
//
// The caches are memory the node means to hold, bounded by their own
// capacity, so the limit should govern everything else. governMemory keeps
// the runtime's limit at the configured one plus what the caches hold now,
// read every memoryEvery: the two block caches and the API's cache of
// rendered narinfos (16 MiB; left out, it pinned a node with 10⁶ paths
// at the limit once narinfo reads filled it: a collection every 25 ms, and
// a narinfo's p99 at one connection of 8–12 ms). A node with a small
// catalog runs at the plain limit; a full one at most 112 MiB above it.

// memoryEvery is how often the limit follows the caches.
const memoryEvery = 2 * time.Second

// cacheBytes is what the chunk index's and the catalog's block caches and the
// narinfo cache hold (all built: governMemory starts once New has built them).
func (n *Node) cacheBytes() int64 {
	return n.store.CacheBytes() + n.catalog.CacheBytes() + n.api.CacheBytes()
}

// governMemory sets the runtime's soft limit to base plus caches(), now
// and every interval until ctx ends. The limit is process-wide: one
// process runs one governed node.
func governMemory(ctx context.Context, base int64, every time.Duration, caches func() int64) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		debug.SetMemoryLimit(base + caches())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
