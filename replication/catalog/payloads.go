package catalog

import (
	"time"

	"github.com/garret-cache/garret/internal/nixid"
)

// The payload of each command type: its own fields, with the flat JSON keys
// the log has always had (the envelope adds "t"), its checks and its apply
// (apply.go). A new command type is a payload, a cmdType and a spec.

// createCache makes a cache (cmdCreateCache).
type createCache struct {
	Cache *Cache `json:"cache,omitempty"`
}

// configureCache patches a cache's settings (cmdConfigureCache).
type configureCache struct {
	Name  nixid.CacheName `json:"name,omitempty"`
	Patch *CachePatch     `json:"patch,omitempty"`
}

// destroyCache removes a cache and everything in it (cmdDestroyCache).
type destroyCache struct {
	Name nixid.CacheName `json:"name,omitempty"`
	// Tombstone keeps the destroyed cache's name from being created
	// again, deleted at DeletedAt; the proposer decides, so every replica
	// applies the same thing whatever its own config says.
	Tombstone bool      `json:"tombstone,omitempty"`
	DeletedAt time.Time `json:"deleted_at,omitzero"`
}

// putObject stores (or replaces) an object (cmdPutObject).
type putObject struct {
	Object *Object `json:"object,omitempty"`
}

// deleteObjects removes objects of a cache (cmdDeleteObjects).
type deleteObjects struct {
	Name   nixid.CacheName       `json:"name,omitempty"`
	Hashes []nixid.StorePathHash `json:"hashes,omitempty"`
}

// touchObjects records that objects of a cache were downloaded at or
// before At (cmdTouchObjects): each one's AccessedAt becomes At unless it is
// later already. Objects that no longer exist are skipped.
type touchObjects struct {
	Name   nixid.CacheName       `json:"name,omitempty"`
	At     time.Time             `json:"at,omitzero"`
	Hashes []nixid.StorePathHash `json:"hashes,omitempty"`
}

// expireObjects removes the listed objects of a cache that were neither
// pushed nor downloaded since Before (cmdExpireObjects): retention. The
// check is made again at apply, so an object downloaded or re-pushed after
// the leader listed it stays.
type expireObjects struct {
	Name   nixid.CacheName       `json:"name,omitempty"`
	Before time.Time             `json:"before,omitzero"`
	Hashes []nixid.StorePathHash `json:"hashes,omitempty"`
}

// putFile stores an auxiliary file of a cache (cmdPutFile).
type putFile struct {
	File *File `json:"file,omitempty"`
}

// revokeToken revokes one token id until it expires (cmdRevokeToken).
type revokeToken struct {
	JTI       string    `json:"jti,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitempty"`
}

// setClusterID records the cluster's identity once (cmdSetClusterID).
type setClusterID struct {
	ClusterID string `json:"cluster_id,omitempty"`
}

// revokeTokens stores a revocation rule (cmdRevokeTokens).
type revokeTokens struct {
	Rule *RevocationRule `json:"rule,omitempty"`
}

func (*createCache) kind() cmdType    { return cmdCreateCache }
func (*configureCache) kind() cmdType { return cmdConfigureCache }
func (*destroyCache) kind() cmdType   { return cmdDestroyCache }
func (*putObject) kind() cmdType      { return cmdPutObject }
func (*deleteObjects) kind() cmdType  { return cmdDeleteObjects }
func (*putFile) kind() cmdType        { return cmdPutFile }
func (*touchObjects) kind() cmdType   { return cmdTouchObjects }
func (*expireObjects) kind() cmdType  { return cmdExpireObjects }
func (*revokeToken) kind() cmdType    { return cmdRevokeToken }
func (*setClusterID) kind() cmdType   { return cmdSetClusterID }
func (*revokeTokens) kind() cmdType   { return cmdRevokeTokens }

// wellFormed checks: parts present, names that parse. A pure function of
// the payload, never made stricter for an existing type (see command's).

func validName(t cmdType, n nixid.CacheName) error {
	if _, err := nixid.ParseCacheName(string(n)); err != nil {
		return invalid(t, "%v", err)
	}
	return nil
}

func validHash(t cmdType, h nixid.StorePathHash) error {
	if _, err := nixid.ParseStorePathHash(string(h)); err != nil {
		return invalid(t, "%v", err)
	}
	return nil
}

func (c *createCache) wellFormed() error {
	if c.Cache == nil {
		return invalid(c.kind(), "no cache")
	}
	return validName(c.kind(), c.Cache.Name)
}

func (c *configureCache) wellFormed() error {
	if c.Patch == nil {
		return invalid(c.kind(), "no patch")
	}
	return validName(c.kind(), c.Name)
}

func (c *destroyCache) wellFormed() error { return validName(c.kind(), c.Name) }

func (c *putObject) wellFormed() error {
	if c.Object == nil {
		return invalid(c.kind(), "no object")
	}
	if err := validHash(c.kind(), c.Object.StorePathHash); err != nil {
		return err
	}
	return validName(c.kind(), c.Object.Cache)
}

func (c *deleteObjects) wellFormed() error { return validHashes(c.kind(), c.Name, c.Hashes) }

func validHashes(t cmdType, n nixid.CacheName, hs []nixid.StorePathHash) error {
	for _, h := range hs {
		if err := validHash(t, h); err != nil {
			return err
		}
	}
	return validName(t, n)
}

func (c *touchObjects) wellFormed() error {
	if c.At.IsZero() {
		return invalid(c.kind(), "no access time")
	}
	return validHashes(c.kind(), c.Name, c.Hashes)
}

func (c *expireObjects) wellFormed() error {
	if c.Before.IsZero() {
		return invalid(c.kind(), "no expiry time")
	}
	return validHashes(c.kind(), c.Name, c.Hashes)
}

func (c *putFile) wellFormed() error {
	if c.File == nil || c.File.Name == "" {
		return invalid(c.kind(), "no file name")
	}
	return validName(c.kind(), c.File.Cache)
}

func (c *revokeToken) wellFormed() error {
	if c.JTI == "" {
		return invalid(c.kind(), "no token id")
	}
	return nil
}

func (c *setClusterID) wellFormed() error {
	if c.ClusterID == "" {
		return invalid(c.kind(), "no cluster id")
	}
	return nil
}

func (c *revokeTokens) wellFormed() error {
	r := c.Rule
	switch {
	case r == nil || (r.Subject == "" && r.CachePattern == ""):
		return invalid(c.kind(), "a rule needs a subject, a cache pattern or both")
	case r.IssuedBefore.IsZero():
		return invalid(c.kind(), "a rule needs an issued-before time")
	case r.CachePattern != "" && !cachePatternRE.MatchString(r.CachePattern):
		return invalid(c.kind(), "cache pattern %q is not a cache name with '*' wildcards", r.CachePattern)
	}
	return nil
}

// bounded checks each field against its bound (limits.go), on the leader.

func (c *createCache) bounded(b *bounds) {
	b.str("the keypair", c.Cache.Keypair, MaxStringBytes)
	b.str("the store dir", c.Cache.StoreDir, MaxStringBytes)
	b.list("upstream cache key names", c.Cache.UpstreamCacheKeyNames, MaxListItems, MaxStringBytes)
}

func (c *configureCache) bounded(b *bounds) {
	p := c.Patch
	if p.Keypair != nil {
		b.str("the keypair", *p.Keypair, MaxStringBytes)
	}
	if p.StoreDir != nil {
		b.str("the store dir", *p.StoreDir, MaxStringBytes)
	}
	if p.UpstreamCacheKeyNames != nil {
		b.list("upstream cache key names", *p.UpstreamCacheKeyNames, MaxListItems, MaxStringBytes)
	}
}

func (*destroyCache) bounded(*bounds) {}

func (c *putObject) bounded(b *bounds) {
	o := c.Object
	b.str("the store path", o.StorePath, MaxStorePathBytes)
	b.list("references", o.References, MaxReferences, MaxReferenceBytes)
	b.list("signatures", o.Sigs, MaxSigs, MaxSigBytes)
	b.str("the deriver", o.Deriver, MaxDeriverBytes)
	b.str("the system", o.System, MaxSystemBytes)
	b.str("the content address", o.CA, MaxCABytes)
	b.str("the uploader", o.CreatedBy, MaxStringBytes)
	if o.Upload != nil {
		b.str("the NAR URL", o.Upload.URL, MaxStringBytes)
		b.str("the compression", o.Upload.Compression, MaxStringBytes)
	}
	if o.NarSize < 0 || o.FileSize < 0 {
		b.fail("negative size")
	}
}

func (*deleteObjects) bounded(*bounds) {}

func (c *touchObjects) bounded(b *bounds) { b.count("objects", len(c.Hashes), MaxObjectsPerCommand) }

func (c *expireObjects) bounded(b *bounds) { b.count("objects", len(c.Hashes), MaxObjectsPerCommand) }

func (c *putFile) bounded(b *bounds) {
	f := c.File
	b.str("the file name", f.Name, MaxStringBytes)
	b.str("the content type", f.ContentType, MaxStringBytes)
	b.str("the content encoding", f.ContentEncoding, MaxStringBytes)
	if f.Size < 0 {
		b.fail("negative size")
	}
}

func (c *revokeToken) bounded(b *bounds) { b.str("the token id", c.JTI, MaxStringBytes) }

func (c *setClusterID) bounded(b *bounds) { b.str("the cluster id", c.ClusterID, MaxStringBytes) }

func (c *revokeTokens) bounded(b *bounds) { b.str("the subject", c.Rule.Subject, MaxStringBytes) }
