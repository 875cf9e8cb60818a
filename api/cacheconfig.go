package api

import (
	"net/http"
	"strings"
	"time"

	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/internal/narinfo"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/catalog"
)

// Attic's cache defaults (attic cache create).
const (
	defaultStoreDir = "/nix/store"
	defaultPriority = 41
)

// apiEndpoint is api-endpoint, or http(s)://Host/ from the request.
func (s *Server) apiEndpoint(r *http.Request) string {
	if s.cfg.APIEndpoint != "" {
		return s.cfg.APIEndpoint
	}
	scheme := "http"
	if r.Header.Get("X-Forwarded-Proto") == "https" || r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/"
}

func (s *Server) substituterEndpoint(r *http.Request, name nixid.CacheName) string {
	base := s.cfg.SubstituterEndpoint
	if base == "" {
		base = s.apiEndpoint(r)
	}
	return strings.TrimSuffix(base, "/") + "/" + string(name)
}

// UploadPrefix is the path prefix of the upload URL (`nix copy --to
// http://NODE/upload/CACHE`): the binary-cache routes again, so Nix's cache
// of the narinfos it uploaded is keyed by another URL than the substituter.
const UploadPrefix = "/upload"

// uploadEndpoint is the URL `nix copy --to` should use for a cache: on the
// API endpoint (uploads go to the node, never to a substituter CDN).
func (s *Server) uploadEndpoint(r *http.Request, name nixid.CacheName) string {
	return strings.TrimSuffix(s.apiEndpoint(r), "/") + UploadPrefix + "/" + string(name)
}

// getCacheConfig is GET /_api/v1/cache-config/{cache} and /{cache}/attic-cache-info.
func (s *Server) getCacheConfig(w http.ResponseWriter, r *http.Request) error {
	name, err := parseCacheName(r)
	if err != nil {
		return err
	}
	cache, err := s.authorize(r, name, needPull)
	if err != nil {
		return err
	}
	key, err := s.keys.get(cache.Keypair)
	if err != nil {
		return err
	}
	sub, api, upload, pub := s.substituterEndpoint(r, name), s.apiEndpoint(r), s.uploadEndpoint(r, name), key.PublicKey()
	upstream := cache.UpstreamCacheKeyNames
	if upstream == nil {
		upstream = []string{}
	}
	ret := v1.RetentionPeriodConfig{Global: true}
	if cache.RetentionPeriod != nil {
		ret = v1.RetentionPeriodConfig{Period: *cache.RetentionPeriod}
	}
	return writeJSON(w, v1.CacheConfig{
		SubstituterEndpoint: &sub, APIEndpoint: &api, UploadEndpoint: &upload, PublicKey: &pub,
		IsPublic: &cache.IsPublic, StoreDir: &cache.StoreDir, Priority: &cache.Priority,
		UpstreamCacheKeyNames: &upstream, RetentionPeriod: &ret, Nodes: s.cacheNodes(r, name),
	})
}

// keypairText turns Attic's keypair config into a Nix secret key.
func keypairText(k v1.KeypairConfig, name nixid.CacheName) (string, error) {
	if k.Generate {
		return narinfo.GenerateKeypair(string(name))
	}
	if _, err := narinfo.ParseSecretKey(k.Keypair); err != nil {
		return "", requestError("invalid keypair: %v", err)
	}
	return k.Keypair, nil
}

// createCache is POST /_api/v1/cache-config/{cache}; needs cc on the name.
func (s *Server) createCache(w http.ResponseWriter, r *http.Request) error {
	name, err := parseCacheName(r)
	if err != nil {
		return err
	}
	c := callerOf(r)
	if perm := c.permission(name); !perm.CreateCache {
		if perm.Any() {
			return errAccess
		}
		return c.unauthorized()
	}
	if "/"+string(name) == UploadPrefix {
		return requestError("the cache name %q is reserved: %s/CACHE is the URL `nix copy --to` uploads to", name, UploadPrefix)
	}
	var req struct {
		Keypair               *v1.KeypairConfig `json:"keypair"`
		IsPublic              bool              `json:"is_public"`
		StoreDir              *string           `json:"store_dir"`
		Priority              *int32            `json:"priority"`
		UpstreamCacheKeyNames *[]string         `json:"upstream_cache_key_names"`
	}
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Keypair == nil {
		return requestError("keypair is required (\"Generate\" or {\"Keypair\": \"name:base64\"})")
	}
	key, err := keypairText(*req.Keypair, name)
	if err != nil {
		return err
	}
	cache := catalog.Cache{
		Name: name, Keypair: key, IsPublic: req.IsPublic, StoreDir: defaultStoreDir, Priority: defaultPriority,
		UpstreamCacheKeyNames: []string{"cache.nixos.org-1"}, CreatedAt: time.Now().UTC(),
	}
	if req.StoreDir != nil {
		if !strings.HasPrefix(*req.StoreDir, "/") {
			return requestError("store_dir must be an absolute path, got %q", *req.StoreDir)
		}
		cache.StoreDir = strings.TrimSuffix(*req.StoreDir, "/")
	}
	if req.Priority != nil {
		cache.Priority = *req.Priority
	}
	if req.UpstreamCacheKeyNames != nil {
		cache.UpstreamCacheKeyNames = *req.UpstreamCacheKeyNames
	}
	return catalogError(s.catalog.CreateCache(r.Context(), cache))
}

// configureCache is PATCH /_api/v1/cache-config/{cache}; needs cr, and cq when
// the retention period is part of the change.
func (s *Server) configureCache(w http.ResponseWriter, r *http.Request) error {
	name, err := parseCacheName(r)
	if err != nil {
		return err
	}
	if _, err := s.authorize(r, name, needConfigure); err != nil {
		return err // before the body is read
	}
	var req v1.CacheConfig
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.RetentionPeriod != nil {
		if _, err := s.authorize(r, name, needRetention); err != nil {
			return err
		}
	}
	var p catalog.CachePatch
	changed := false
	if req.Keypair != nil {
		key, err := keypairText(*req.Keypair, name)
		if err != nil {
			return err
		}
		p.Keypair, changed = &key, true
	}
	if req.IsPublic != nil {
		p.IsPublic, changed = req.IsPublic, true
	}
	if req.StoreDir != nil {
		if !strings.HasPrefix(*req.StoreDir, "/") {
			return requestError("store_dir must be an absolute path, got %q", *req.StoreDir)
		}
		dir := strings.TrimSuffix(*req.StoreDir, "/")
		p.StoreDir, changed = &dir, true
	}
	if req.Priority != nil {
		p.Priority, changed = req.Priority, true
	}
	if req.UpstreamCacheKeyNames != nil {
		p.UpstreamCacheKeyNames, changed = req.UpstreamCacheKeyNames, true
	}
	if req.RetentionPeriod != nil {
		p.SetRetention, changed = true, true
		if !req.RetentionPeriod.Global {
			period := req.RetentionPeriod.Period
			p.RetentionPeriod = &period
		}
	}
	if !changed {
		return requestError("No modifiable fields were set.")
	}
	return catalogError(s.catalog.ConfigureCache(r.Context(), name, p))
}

// destroyCache is DELETE /_api/v1/cache-config/{cache}; needs cd. With
// soft-delete-caches the name stays taken (Attic's CacheAlreadyExists on a
// later create).
func (s *Server) destroyCache(w http.ResponseWriter, r *http.Request) error {
	name, err := parseCacheName(r)
	if err != nil {
		return err
	}
	if _, err := s.authorize(r, name, needDestroy); err != nil {
		return err
	}
	how := catalog.HardDelete
	if s.cfg.SoftDeleteCaches {
		how = catalog.SoftDelete
	}
	return catalogError(s.catalog.DestroyCache(r.Context(), name, how))
}

// pathsRequest decodes the {"cache","store_path_hashes"} body that
// get-missing-paths and delete-paths share, validates it, and checks the
// caller's permission on the cache.
func (s *Server) pathsRequest(w http.ResponseWriter, r *http.Request, n need) (nixid.CacheName, []nixid.StorePathHash, error) {
	var req v1.GetMissingPathsRequest
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxJSONSize)
	cache, err := s.cacheBody(w, r, body, s.cfg.MaxJSONSize, false,
		jsonObject("JSON body", &req, func(q *v1.GetMissingPathsRequest) string { return q.Cache }), n)
	if err != nil {
		return "", nil, err
	}
	hashes := make([]nixid.StorePathHash, 0, len(req.StorePathHashes))
	for _, raw := range req.StorePathHashes {
		h, err := nixid.ParseStorePathHash(raw)
		if err != nil {
			return "", nil, requestError("%v", err)
		}
		hashes = append(hashes, h)
	}
	return cache.Name, hashes, nil
}

// getMissingPaths is POST /_api/v1/get-missing-paths; needs push.
func (s *Server) getMissingPaths(w http.ResponseWriter, r *http.Request) error {
	name, hashes, err := s.pathsRequest(w, r, needPush)
	if err != nil {
		return err
	}
	missing, err := s.catalog.MissingPaths(name, hashes)
	if err != nil {
		return err
	}
	out := v1.GetMissingPathsResponse{MissingPaths: make([]string, 0, len(missing))}
	for _, h := range missing {
		out.MissingPaths = append(out.MissingPaths, string(h))
	}
	return writeJSON(w, out)
}
