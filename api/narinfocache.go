package api

import (
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/zeebo/blake3"
)

// narinfoCacheBytes bounds the rendered narinfos kept (a narinfo is about
// 0.5–2 KiB; one with thousands of references is larger and is not kept
// past narinfoCacheMaxBody).
const (
	narinfoCacheBytes   = 16 << 20
	narinfoCacheMaxBody = 64 << 10
)

// narinfoCache keeps rendered, signed narinfos, least recently used out
// first within a byte budget. An Ed25519 signature and the object's JSON
// decoding were most of a narinfo request's cost, and the same narinfos are
// asked for again and again. Entries are keyed by content (narinfoKey), so
// none is ever stale: a changed object or key is a new entry.
type narinfoCache struct {
	mu    sync.Mutex
	lru   *simplelru.LRU[[32]byte, string]
	bytes int
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

func (c *narinfoCache) get(k [32]byte) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru == nil {
		return "", false
	}
	return c.lru.Get(k)
}

func (c *narinfoCache) add(k [32]byte, body string) {
	if len(body) > narinfoCacheMaxBody {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru == nil {
		// The entry count is bounded by the bytes below, not here.
		c.lru, _ = simplelru.NewLRU[[32]byte, string](narinfoCacheBytes/64, func(_ [32]byte, v string) { c.bytes -= len(v) })
	}
	if c.lru.Contains(k) {
		return
	}
	c.lru.Add(k, body)
	c.bytes += len(body)
	for c.bytes > narinfoCacheBytes {
		c.lru.RemoveOldest()
	}
}
