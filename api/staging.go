package api

import (
	"context"
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
// with a TTL and a cap on entries so abandoned uploads cannot grow it.
type staging struct {
	mu      sync.Mutex
	ttl     time.Duration
	max     int
	entries map[string]staged
}

func newStaging(ttl time.Duration, max int) *staging {
	return &staging{ttl: ttl, max: max, entries: make(map[string]staged)}
}

func stagingKey(cache nixid.CacheName, url string) string { return string(cache) + "\x00" + url }

// put records an upload, evicting expired entries (and the oldest one when full).
func (st *staging) put(cache nixid.CacheName, url string, s staged) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.expireLocked(s.at)
	if len(st.entries) >= st.max {
		var oldestKey string
		var oldest time.Time
		for k, e := range st.entries {
			if oldestKey == "" || e.at.Before(oldest) {
				oldestKey, oldest = k, e.at
			}
		}
		delete(st.entries, oldestKey)
	}
	st.entries[stagingKey(cache, url)] = s
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
	delete(st.entries, stagingKey(cache, url))
}

func (st *staging) expireLocked(now time.Time) {
	for k, e := range st.entries {
		if now.Sub(e.at) > st.ttl {
			delete(st.entries, k)
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
