package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/narinfo"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/catalog"
)

var errTooLarge = &Error{Status: http.StatusRequestEntityTooLarge, Kind: "PayloadTooLarge", Message: "Request body too large."}

func isTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// readUploadInfo reads Attic's upload info from the preamble (preferred when
// both are present, as in Attic) or the X-Attic-Nar-Info header, and
// authorizes the push on the cache it names: before the body when the info
// is in the header, before the rest of the preamble when it starts with its
// cache (see cacheBody).
func (s *Server) readUploadInfo(w http.ResponseWriter, r *http.Request) (*v1.UploadPathNarInfo, catalog.Cache, error) {
	var info v1.UploadPathNarInfo
	decode := jsonObject("upload info", &info, func(i *v1.UploadPathNarInfo) string { return i.Cache })
	if p := r.Header.Get(v1.HeaderNarInfoPreamble); p != "" {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n <= 0 {
			return nil, catalog.Cache{}, requestError("%s must be a positive integer, got %q", v1.HeaderNarInfoPreamble, p)
		}
		if n > s.cfg.MaxNarInfoSize {
			return nil, catalog.Cache{}, requestError("Upload info is too large (%d bytes, limit %d)", n, s.cfg.MaxNarInfoSize)
		}
		cache, err := s.cacheBody(w, r, r.Body, n, true, decode, needPush)
		return &info, cache, err
	}
	h := r.Header.Get(v1.HeaderNarInfo)
	if h == "" {
		return nil, catalog.Cache{}, requestError("%s must be set", v1.HeaderNarInfo)
	}
	if int64(len(h)) > s.cfg.MaxNarInfoSize {
		return nil, catalog.Cache{}, requestError("Upload info is too large")
	}
	if err := callerOf(r).mayHold(needPush); err != nil {
		return nil, catalog.Cache{}, err
	}
	name, err := decode([]byte(h))
	if err != nil {
		return nil, catalog.Cache{}, err
	}
	cache, err := s.authorize(r, name, needPush)
	return &info, cache, err
}

// validUpload is an upload info whose every field has been parsed.
type validUpload struct {
	cache   nixid.CacheName
	hash    nixid.StorePathHash
	narHash nixid.NarHash
	info    *v1.UploadPathNarInfo
}

// validateUploadInfo parses every field of info as a narinfo field
// (narinfo.Validate): the store path in the cache's store directory, no
// control characters, Nix's formats for references, deriver, system, CA and
// signatures.
func validateUploadInfo(info *v1.UploadPathNarInfo, storeDir string) (*validUpload, error) {
	cache, err := nixid.ParseCacheName(info.Cache)
	if err != nil {
		return nil, requestError("%v", err)
	}
	h, err := nixid.ParseStorePathHash(info.StorePathHash)
	if err != nil {
		return nil, requestError("%v", err)
	}
	_, ph, _, err := nixid.SplitStorePath(info.StorePath)
	if err != nil {
		return nil, requestError("%v", err)
	}
	if ph != h {
		return nil, requestError("store_path %q does not have store_path_hash %s", info.StorePath, h)
	}
	narHash, err := nixid.ParseNarHash(info.NarHash)
	if err != nil {
		return nil, requestError("%v", err)
	}
	if info.NarSize <= 0 {
		return nil, requestError("nar_size must be positive, got %d", info.NarSize)
	}
	ni := narinfo.NarInfo{StorePath: info.StorePath, References: info.References, Sigs: info.Sigs,
		Deriver: deref(info.Deriver), System: deref(info.System), CA: deref(info.CA)}
	if err := ni.Validate(storeDir); err != nil {
		return nil, requestError("%v", err)
	}
	return &validUpload{cache: cache, hash: h, narHash: narHash, info: info}, nil
}

// uploadPath is PUT /_api/v1/upload-path: one NAR, uncompressed, streamed.
func (s *Server) uploadPath(w http.ResponseWriter, r *http.Request) error {
	info, cache, err := s.readUploadInfo(w, r)
	if err != nil {
		return err
	}
	up, err := validateUploadInfo(info, cache.StoreDir)
	if err != nil {
		return err
	}
	if err := catalogError(s.catalog.AwaitWritable(r.Context())); err != nil {
		return err // before the NAR is read, when the catalog cannot take it
	}
	in, err := s.ingestNAR(r.Context(), io.LimitReader(r.Body, info.NarSize))
	if err != nil {
		return err
	}
	if err := in.checkClaims(up.narHash, info.NarSize); err != nil {
		return err
	}
	manifest, err := s.store.PutManifest(in.res.Manifest)
	if err != nil {
		return err
	}
	obj := catalog.Object{
		Cache: up.cache, StorePathHash: up.hash, StorePath: info.StorePath,
		References: info.References, Sigs: info.Sigs,
		Deriver: deref(info.Deriver), System: deref(info.System), CA: deref(info.CA),
		NarHash: in.narHash, NarSize: in.narSize, Manifest: manifest, FileSize: in.res.StoredSize,
		CreatedAt: time.Now().UTC(), CreatedBy: callerOf(r).subject(),
	}
	prev, err := s.catalog.Object(up.cache, up.hash)
	had := err == nil && prev.NarHash == in.narHash && prev.NarSize == in.narSize
	if !had {
		if err := s.ensureCopies(r.Context(), manifest); err != nil {
			return err
		}
	}
	if err := catalogError(s.catalog.PutObject(r.Context(), obj)); err != nil {
		return err
	}
	s.metrics.ingested(in)
	s.metrics.pushed("attic", !had)
	return writeJSON(w, uploadResult(in, had))
}

// uploadResult answers from the caller's cache only: Deduplicated when the
// cache already held this path with this NAR, else Uploaded with the NAR's
// stored size and a frac_deduplicated of 0. What the chunk store found
// stored for other caches (which may be other tenants' private caches) is
// never told: chunk-level dedup shows in the node's metrics, not here.
func uploadResult(in *ingested, alreadyInCache bool) v1.UploadPathResult {
	if alreadyInCache {
		return v1.UploadPathResult{Kind: v1.UploadKindDeduplicated}
	}
	size, frac := in.res.StoredSize, 0.0
	return v1.UploadPathResult{Kind: v1.UploadKindUploaded, FileSize: &size, FracDeduplicated: &frac}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

// decodeJSON reads a capped JSON body into v.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxJSONSize)
	if err := json.NewDecoder(body).Decode(v); err != nil {
		if isTooLarge(err) {
			return withMessage(errTooLarge, "Request body too large (limit %d bytes).", s.cfg.MaxJSONSize)
		}
		return requestError("invalid JSON body: %v", err)
	}
	return nil
}

// ensureCopies waits until enough nodes hold a pushed manifest; a push
// that cannot get its copies is refused (503) and nothing is committed.
// The wait ends early when this node can no longer take writes (cut off
// from the majority): the push would fail to commit anyway, and the client
// learns why at once.
func (s *Server) ensureCopies(ctx context.Context, id chunkstore.ManifestID) error {
	if s.copies == nil {
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := s.catalog.AwaitWritable(ctx); err != nil && ctx.Err() == nil {
				cancel(err)
				return
			}
		}
	}()
	err := s.copies.Ensure(ctx, id)
	if err == nil {
		return nil
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return catalogError(cause)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &Error{Status: http.StatusServiceUnavailable, Kind: "NotEnoughCopies",
		Message: "The push could not be copied to enough nodes ([cluster] min-copies-before-ack): " + err.Error(), cause: err}
}
