package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/narinfo"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/catalog"
)

// Content types of the Nix binary-cache protocol.
const (
	mimeNixCacheInfo = "text/x-nix-cache-info"
	mimeNarInfo      = "text/x-nix-narinfo"
	mimeNar          = "application/x-nix-nar"
)

func setVisibility(w http.ResponseWriter, c catalog.Cache) {
	if c.IsPublic {
		w.Header().Set(v1.HeaderCacheVisibility, "public")
	}
}

func (s *Server) getNixCacheInfo(w http.ResponseWriter, r *http.Request) error {
	name, err := parseCacheName(r)
	if err != nil {
		return err
	}
	cache, err := s.authorize(r, name, needPull)
	if err != nil {
		return err
	}
	setVisibility(w, cache)
	w.Header().Set("Content-Type", mimeNixCacheInfo)
	_, err = fmt.Fprintf(w, "WantMassQuery: 1\nStoreDir: %s\nPriority: %d\n", cache.StoreDir, nodePriority(cache.Priority, s.cfg.PriorityOffset))
	return err
}

// nodePriority is the cache's priority plus this node's [cluster]
// priority-offset, kept within Nix's int (a wider number would make Nix
// fail to read nix-cache-info).
func nodePriority(cache, offset int32) int32 {
	return int32(min(max(int64(cache)+int64(offset), math.MinInt32), math.MaxInt32))
}

// getCacheFile serves /{cache}/<hash>.narinfo and /{cache}/<hash>.ls.
func (s *Server) getCacheFile(w http.ResponseWriter, r *http.Request) error {
	file := r.PathValue("file")
	switch {
	case strings.HasSuffix(file, ".narinfo"):
		return s.getNarInfo(w, r, strings.TrimSuffix(file, ".narinfo"))
	case strings.HasSuffix(file, ".ls"):
		if _, err := nixid.ParseStorePathHash(strings.TrimSuffix(file, ".ls")); err != nil {
			return requestError("%v", err)
		}
		return s.serveAuxFile(w, r, file)
	}
	return errNotFound
}

func (s *Server) getNarInfo(w http.ResponseWriter, r *http.Request, hashPart string) error {
	name, err := parseCacheName(r)
	if err != nil {
		return err
	}
	cache, h, err := s.pullHash(r, name, hashPart)
	if err != nil {
		return err
	}
	body, err := s.narinfo(name, cache, h)
	if err != nil {
		return err
	}
	setVisibility(w, cache)
	w.Header().Set("Content-Type", mimeNarInfo)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, err = io.WriteString(w, body)
	return err
}

// narinfo is the rendered, signed narinfo of a store path, from the
// narinfo cache while nothing it derives from has changed (narinfoCache).
func (s *Server) narinfo(name nixid.CacheName, cache catalog.Cache, h nixid.StorePathHash) (string, error) {
	id := narinfoID{name, h}
	gen := s.catalog.ObjectsGeneration() // before the reads below
	e, ok := s.narinfos.get(id)
	if ok && e.gen == gen {
		return e.body, nil
	}
	raw, err := s.catalog.ObjectRaw(name, h)
	if errors.Is(err, catalog.ErrNoSuchObject) {
		return "", errNoSuchObject
	} else if err != nil {
		return "", err
	}
	key := narinfoKey(cache.Keypair, raw)
	if !ok || e.key != key {
		obj, err := catalog.DecodeObject(raw)
		if err != nil {
			return "", err
		}
		if e.body, err = s.renderNarInfo(cache, obj); err != nil {
			return "", err
		}
	}
	s.narinfos.add(id, narinfoEntry{gen: gen, key: key, body: e.body})
	return e.body, nil
}

// pullHash parses a store path hash and checks pull permission, before any
// lookup, so a private cache reveals nothing.
func (s *Server) pullHash(r *http.Request, name nixid.CacheName, hashPart string) (catalog.Cache, nixid.StorePathHash, error) {
	h, err := nixid.ParseStorePathHash(hashPart)
	if err != nil {
		return catalog.Cache{}, "", requestError("%v", err)
	}
	cache, err := s.authorize(r, name, needPull)
	return cache, h, err
}

// pullObject is pullHash, then loads that store path of the cache.
func (s *Server) pullObject(r *http.Request, name nixid.CacheName, hashPart string) (catalog.Cache, catalog.Object, error) {
	cache, h, err := s.pullHash(r, name, hashPart)
	if err != nil {
		return cache, catalog.Object{}, err
	}
	obj, err := s.catalog.Object(name, h)
	if errors.Is(err, catalog.ErrNoSuchObject) {
		return cache, obj, errNoSuchObject
	}
	return cache, obj, err
}

// renderNarInfo builds the narinfo with a relative URL and the cache's
// signature first, followed by the signatures the uploader supplied.
func (s *Server) renderNarInfo(cache catalog.Cache, o catalog.Object) (string, error) {
	key, err := s.keys.get(cache.Keypair)
	if err != nil {
		return "", fmt.Errorf("cache %s: signing key: %w", cache.Name, err)
	}
	ni := narinfo.NarInfo{
		StorePath:   o.StorePath,
		URL:         "nar/" + string(o.StorePathHash) + ".nar",
		Compression: "zstd",
		NarHash:     o.NarHash,
		NarSize:     uint64(o.NarSize),
		References:  o.References,
		Deriver:     o.Deriver,
		System:      o.System,
		CA:          o.CA,
	}
	sig := key.Sign(narinfo.Fingerprint(o.StorePath, o.NarHash, uint64(o.NarSize), o.References))
	ni.Sigs = append([]string{sig}, o.Sigs...)
	text, err := ni.Render()
	if err != nil {
		return "", fmt.Errorf("cache %s: object %s: refusing to serve its narinfo: %w", cache.Name, o.StorePathHash, err)
	}
	return text, nil
}

// keyCache memoises parsed signing keys by their text.
type keyCache struct{ m sync.Map }

func (k *keyCache) get(text string) (narinfo.SecretKey, error) {
	if v, ok := k.m.Load(text); ok {
		return v.(narinfo.SecretKey), nil
	}
	key, err := narinfo.ParseSecretKey(text)
	if err != nil {
		return key, err
	}
	k.m.Store(text, key)
	return key, nil
}

// getNar serves /{cache}/nar/<storePathHash>.nar from the local chunks, with
// HEAD and single-range support. Other names under nar/ are staged uploads of
// Nix's own PUT protocol (Nix HEADs them before uploading).
func (s *Server) getNar(w http.ResponseWriter, r *http.Request) error {
	name, err := parseCacheName(r)
	if err != nil {
		return err
	}
	file := r.PathValue("file")
	hashPart, ok := strings.CutSuffix(file, ".nar")
	if !ok || len(hashPart) != 32 {
		return s.getNarFile(w, r, name, file)
	}
	cache, obj, err := s.pullObject(r, name, hashPart)
	if err != nil {
		return err
	}
	setVisibility(w, cache)
	s.recordDownload(r, obj)
	return s.serveNAR(w, r, obj.Manifest, mimeNar)
}

// serveNAR streams a stored manifest's frames. It checks that every chunk is
// local before promising a 200, so a client never gets a truncated success.
func (s *Server) serveNAR(w http.ResponseWriter, r *http.Request, id chunkstore.ManifestID, contentType string) error {
	nar, err := s.openNAR(r.Context(), id)
	switch {
	case errors.Is(err, chunkstore.ErrNotFound), errors.Is(err, chunkstore.ErrMissingChunks):
		return fmt.Errorf("%w (%v)", errIncompleteNar, err)
	case err != nil:
		return err
	}
	off, length, partial, err := parseRange(r.Header.Get("Range"), nar.Size)
	if err != nil {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", nar.Size))
		return err
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	status := http.StatusOK
	if partial {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+length-1, nar.Size))
		status = http.StatusPartialContent
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead || length == 0 {
		return nil
	}
	if _, err := nar.WriteRange(r.Context(), w, off, length); err != nil {
		// Headers are out: abort the connection so the client sees a short
		// body against Content-Length rather than a silently truncated 200.
		s.log.Warn("NAR stream aborted", "manifest", id, "request_id", requestID(r), "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// openNAR opens a NAR. Chunks this node lacks are served from peers as the
// response streams (and kept): their frame sizes are asked first, so the
// length is exact and a chunk no peer has is a 503 before any byte. A stored
// frame found bad while streaming is fetched from a peer, stored and served
// in its place (chunkstore.Sources.Refetch).
func (s *Server) openNAR(ctx context.Context, id chunkstore.ManifestID) (*chunkstore.NAR, error) {
	var src chunkstore.Sources
	if s.fetcher != nil {
		src.Refetch = s.fetcher.Remote
	}
	nar, err := s.store.OpenNARWith(id, src)
	if s.fetcher == nil || !(errors.Is(err, chunkstore.ErrNotFound) || errors.Is(err, chunkstore.ErrMissingChunks)) {
		return nar, err
	}
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if errors.Is(err, chunkstore.ErrNotFound) {
		if ferr := s.fetcher.FetchManifest(fctx, id); ferr != nil {
			return nil, fmt.Errorf("%w (from peers: %v)", err, ferr)
		}
		if nar, err = s.store.OpenNARWith(id, src); !errors.Is(err, chunkstore.ErrMissingChunks) {
			return nar, err
		}
	}
	var missing *chunkstore.MissingChunksError
	if !errors.As(err, &missing) {
		return nil, err
	}
	remote, ferr := s.fetcher.Remote(fctx, missing.Chunks)
	if ferr != nil {
		return nil, fmt.Errorf("%w (from peers: %v)", err, ferr)
	}
	src.Remote = remote
	s.metrics.readThrough.Inc()
	s.metrics.readThroughChunks.Add(float64(len(missing.Chunks)))
	return s.store.OpenNARWith(id, src)
}

// parseRange handles a single "bytes=" range; anything it cannot satisfy as
// one range is served whole (RFC 9110 allows ignoring Range).
func parseRange(header string, size int64) (off, length int64, partial bool, err error) {
	spec, ok := strings.CutPrefix(header, "bytes=")
	if header == "" || !ok || strings.Contains(spec, ",") {
		return 0, size, false, nil
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, size, false, nil
	}
	switch {
	case first == "": // suffix: last N bytes
		n, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || n <= 0 {
			return 0, 0, false, errRangeNotSatisf
		}
		n = min(n, size)
		return size - n, n, true, nil
	default:
		start, perr := strconv.ParseInt(first, 10, 64)
		if perr != nil || start < 0 || start >= size {
			return 0, 0, false, errRangeNotSatisf
		}
		end := size - 1
		if last != "" {
			e, perr := strconv.ParseInt(last, 10, 64)
			if perr != nil || e < start {
				return 0, 0, false, errRangeNotSatisf
			}
			end = min(e, size-1)
		}
		return start, end - start + 1, true, nil
	}
}
