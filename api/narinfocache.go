package api

import (
	"sync"

	"github.com/garret-cache/garret/internal/nixid"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/zeebo/blake3"
)

// narinfoCacheBytes bounds the heap the rendered narinfos kept take (a
// narinfo is about 0.5–2 KiB; one with thousands of references is larger and
// is not kept past narinfoCacheMaxBody). Each entry counts its body plus
// narinfoEntryOverhead: the LRU's list element and map slot and the key's
// strings (a 600-byte body took 892 bytes of heap per entry, measured with
// runtime.MemStats over 20000 entries). Counting bodies alone, the cache
// took 30 MB of heap for its 16 MiB budget at 10⁶ paths, outside the
// memory governor's view (node/memory.go), and the collector ran back to
// back.
const (
	narinfoCacheBytes    = 16 << 20
	narinfoCacheMaxBody  = 64 << 10
	narinfoEntryOverhead = 288
)

// narinfoCache keeps rendered, signed narinfos, least recently used out
// first within a byte budget. An Ed25519 signature and the object's JSON
// decoding were most of a narinfo request's cost, and the same narinfos are
// asked for again and again.
//
// An entry is found by store path and holds the catalog's
// ObjectsGeneration it was checked at and a digest of what it was rendered
// from (narinfoKey: the cache's key and the object as stored). While the
// generation has not moved, nothing a narinfo derives from has changed and
// the entry is served without reading the catalog (the object read was 14 %
// of a node's CPU under narinfo load). Once it moves, the object is read
// again: the same digest revalidates the entry, another renders it anew. So
// no entry is ever served stale.
type narinfoCache struct {
	mu    sync.Mutex
	lru   *simplelru.LRU[narinfoID, narinfoEntry]
	bytes int
}

// narinfoID is a store path of a cache.
type narinfoID struct {
	cache nixid.CacheName
	hash  nixid.StorePathHash
}

type narinfoEntry struct {
	gen  uint64   // the catalog's ObjectsGeneration when last checked
	key  [32]byte // narinfoKey of what body was rendered from
	body string
}

// narinfoKey digests the cache's keypair and the object as stored.
func narinfoKey(keypair string, raw []byte) [32]byte {
	h := blake3.New()
	_, _ = h.WriteString(keypair)
	_, _ = h.Write([]byte{0})
	_, _ = h.Write(raw)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func (c *narinfoCache) get(id narinfoID) (narinfoEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru == nil {
		return narinfoEntry{}, false
	}
	return c.lru.Get(id)
}

func (c *narinfoCache) add(id narinfoID, e narinfoEntry) {
	if len(e.body) > narinfoCacheMaxBody {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru == nil {
		// The entry count is bounded by the bytes below, not here.
		c.lru, _ = simplelru.NewLRU[narinfoID, narinfoEntry](narinfoCacheBytes/64, func(_ narinfoID, v narinfoEntry) { c.bytes -= entryBytes(v) })
	}
	c.lru.Remove(id)
	c.lru.Add(id, e)
	c.bytes += entryBytes(e)
	for c.bytes > narinfoCacheBytes {
		c.lru.RemoveOldest()
	}
}

// size is the heap the entries take, as counted against narinfoCacheBytes.
func (c *narinfoCache) size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(c.bytes)
}

func entryBytes(e narinfoEntry) int { return len(e.body) + narinfoEntryOverhead }

// CacheBytes is the heap the narinfo cache takes now (at most 16 MiB): memory
// the node means to hold, which its memory governor adds to the soft limit.
func (s *Server) CacheBytes() int64 { return s.narinfos.size() }
