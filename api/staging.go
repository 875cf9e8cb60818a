package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/nixcompress"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/p2p"
)

// staged is a NAR that Nix PUT before its narinfo: stored and structurally
// valid, but invisible until a narinfo with the same NarHash and NarSize
// commits it. Its manifest is written, and the chunk-store sweep's grace
// period (longer than the staging TTL) keeps its chunks alive meanwhile.
type staged struct {
	manifest    chunkstore.ManifestID
	narHash     nixid.NarHash
	narSize     int64
	storedSize  int64
	compression nixcompress.Kind
	// file is the upload as sent, when kept (see Server.putNar).
	file     chunkstore.ManifestID
	fileSize int64
	at       time.Time
}

// staging holds staged uploads keyed by cache and URL ("nar/<filehash>.nar.xz"),
// with a TTL, a cap on entries and a quota per cache, so abandoned uploads
// cannot grow it and no cache's uploads can push out another's. An upload
// reserves its slot before its body is read (reserve) and fills it (put);
// a cache at its quota, or a node at its cap, is refused (429), never
// served by evicting an upload still waiting for its narinfo.
type staging struct {
	mu       sync.Mutex
	ttl      time.Duration
	max      int
	perCache int
	entries  map[string]staged
	count    map[nixid.CacheName]int // entries + reservations per cache
	total    int                     // entries + reservations
}

func newStaging(ttl time.Duration, max, perCache int) *staging {
	return &staging{ttl: ttl, max: max, perCache: perCache, entries: make(map[string]staged), count: make(map[nixid.CacheName]int)}
}

func stagingKey(cache nixid.CacheName, url string) string { return string(cache) + "\x00" + url }

// errStagingFull refuses an upload when its cache, or the node, has as many
// NARs waiting for their narinfo as it may hold.
func errStagingFull(what string, n int, ttl time.Duration) *Error {
	return &Error{Status: http.StatusTooManyRequests, Kind: "TooManyStagedUploads",
		Message: fmt.Sprintf("%s %d NARs uploaded without their narinfo yet, the most it may; "+
			"retry once some are committed, or after %v when abandoned ones expire", what, n, ttl)}
}

// reserve takes a slot for one upload to cache before its body is read;
// release gives it back (after put, or when the upload fails). Expired
// entries are dropped first.
func (st *staging) reserve(cache nixid.CacheName) (release func(), err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.expireLocked(time.Now())
	switch {
	case st.count[cache] >= st.perCache:
		return nil, errStagingFull("This cache has", st.perCache, st.ttl)
	case st.total >= st.max:
		return nil, errStagingFull("This node has", st.max, st.ttl)
	}
	st.count[cache]++
	st.total++
	var once sync.Once
	return func() { once.Do(func() { st.mu.Lock(); st.decLocked(cache); st.mu.Unlock() }) }, nil
}

// put records an upload in a slot its caller reserved (and releases after).
func (st *staging) put(cache nixid.CacheName, url string, s staged) {
	st.mu.Lock()
	defer st.mu.Unlock()
	k := stagingKey(cache, url)
	if _, ok := st.entries[k]; !ok {
		st.count[cache]++
		st.total++
	}
	st.entries[k] = s
}

// get returns a live staged upload.
func (st *staging) get(cache nixid.CacheName, url string) (staged, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.entries[stagingKey(cache, url)]
	if !ok || time.Since(s.at) > st.ttl {
		return staged{}, false
	}
	return s, true
}

// remove forgets a staged upload once its narinfo was handled.
func (st *staging) remove(cache nixid.CacheName, url string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	k := stagingKey(cache, url)
	if _, ok := st.entries[k]; ok {
		delete(st.entries, k)
		st.decLocked(cache)
	}
}

func (st *staging) decLocked(cache nixid.CacheName) {
	st.total--
	if st.count[cache]--; st.count[cache] <= 0 {
		delete(st.count, cache)
	}
}

func (st *staging) expireLocked(now time.Time) {
	for k, e := range st.entries {
		if now.Sub(e.at) > st.ttl {
			delete(st.entries, k)
			st.decLocked(nixid.CacheName(k[:strings.IndexByte(k, 0)]))
		}
	}
}

// LookupStaged is a staged upload as peers see it (see p2p.ServeStaged).
func (s *Server) LookupStaged(cache, url string) (p2p.StagedNAR, bool) {
	name, err := nixid.ParseCacheName(cache)
	if err != nil {
		return p2p.StagedNAR{}, false
	}
	st, ok := s.staging.get(name, url)
	if !ok {
		return p2p.StagedNAR{}, false
	}
	p := p2p.StagedNAR{Manifest: st.manifest.String(), NarHash: st.narHash.String(), NarSize: st.narSize,
		StoredSize: st.storedSize, Compression: string(st.compression)}
	if !st.file.IsZero() {
		p.File, p.FileSize = st.file.String(), st.fileSize
	}
	return p, true
}

// stagedOnPeer finds an upload staged on another node and checks what the
// peer says as strictly as a local record.
func (s *Server) stagedOnPeer(ctx context.Context, cache nixid.CacheName, url string) (staged, bool) {
	if s.peerStaging == nil {
		return staged{}, false
	}
	p, ok := s.peerStaging.FindStaged(ctx, string(cache), url)
	if !ok {
		return staged{}, false
	}
	manifest, err1 := chunkstore.ParseManifestID(p.Manifest)
	narHash, err2 := nixid.ParseNarHash(p.NarHash)
	kind, err3 := nixcompress.ParseKind(p.Compression)
	var file chunkstore.ManifestID
	var err4 error
	if p.File != "" {
		file, err4 = chunkstore.ParseManifestID(p.File)
	}
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || p.NarSize <= 0 || p.FileSize < 0 {
		s.log.Warn("a peer described a staged upload badly", "cache", cache, "url", url)
		return staged{}, false
	}
	return staged{manifest: manifest, narHash: narHash, narSize: p.NarSize, storedSize: p.StoredSize, compression: kind,
		file: file, fileSize: p.FileSize, at: time.Now()}, true
}
