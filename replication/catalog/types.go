package catalog

import (
	"errors"
	"slices"
	"time"

	"github.com/garret-cache/garret/chunkstore"
	"github.com/garret-cache/garret/internal/nixid"
)

// Sentinel errors. Domain errors come back from the FSM as values.
var (
	ErrCacheExists  = errors.New("catalog: cache already exists")
	ErrNoSuchCache  = errors.New("catalog: no such cache")
	ErrNoSuchObject = errors.New("catalog: no such object")
	ErrNoSuchFile   = errors.New("catalog: no such file")
	ErrNoSuchNarURL = errors.New("catalog: no object was uploaded with that NAR URL")
	ErrNotLeader    = errors.New("catalog: this node is not the Raft leader")
	ErrClosed       = errors.New("catalog: closed")
	// ErrUpgradeFirst refuses a command some Raft server would not know
	// (its CommandVersion is older than the command's): upgrade every node
	// first.
	ErrUpgradeFirst = errors.New("catalog: not every node of the cluster knows this command yet; upgrade every node first")
	// ErrTooManyRevocationRules refuses a revocation rule past
	// MaxRevocationRules distinct (subject, cache pattern) pairs.
	ErrTooManyRevocationRules = errors.New("catalog: too many token revocation rules")
)

// RevocationRule revokes every token issued before IssuedBefore whose
// subject is Subject (if set) and that grants anything on a cache name
// CachePattern matches (if set); at least one of the two is set. The API
// decides what a token's issue time is and which of its caches match.
type RevocationRule struct {
	Subject      string    `json:"subject,omitempty"`
	CachePattern string    `json:"cache_pattern,omitempty"`
	IssuedBefore time.Time `json:"issued_before"`
}

// Cache is a named binary cache with its signing key.
type Cache struct {
	Name                  nixid.CacheName `json:"name"`
	Keypair               string          `json:"keypair"`
	IsPublic              bool            `json:"is_public"`
	StoreDir              string          `json:"store_dir"`
	Priority              int32           `json:"priority"`
	UpstreamCacheKeyNames []string        `json:"upstream_cache_key_names"`
	RetentionPeriod       *uint32         `json:"retention_period,omitempty"` // seconds; nil = global
	CreatedAt             time.Time       `json:"created_at"`
}

// clone copies c so the copy shares no slice or pointer with it.
func (c Cache) clone() Cache {
	c.UpstreamCacheKeyNames = slices.Clone(c.UpstreamCacheKeyNames)
	if c.RetentionPeriod != nil {
		p := *c.RetentionPeriod
		c.RetentionPeriod = &p
	}
	return c
}

// Deletion is how DestroyCache removes a cache. Both remove its objects and
// files at once (the sweep then frees their chunks).
type Deletion uint8

const (
	// HardDelete lets the name be created again.
	HardDelete Deletion = iota
	// SoftDelete leaves a tombstone, so the name can never be created again
	// (Attic's soft-delete-caches); the cache reads as missing everywhere.
	SoftDelete
)

// tombstone is what a soft-deleted cache leaves under its name.
type tombstone struct {
	Name      nixid.CacheName `json:"name"`
	DeletedAt time.Time       `json:"deleted_at"`
}

// CachePatch changes some fields of a cache.
type CachePatch struct {
	Keypair               *string   `json:"keypair,omitempty"`
	IsPublic              *bool     `json:"is_public,omitempty"`
	StoreDir              *string   `json:"store_dir,omitempty"`
	Priority              *int32    `json:"priority,omitempty"`
	UpstreamCacheKeyNames *[]string `json:"upstream_cache_key_names,omitempty"`
	SetRetention          bool      `json:"set_retention,omitempty"`
	RetentionPeriod       *uint32   `json:"retention_period,omitempty"` // with SetRetention; nil = global
}

// Object is one store path in one cache.
type Object struct {
	Cache         nixid.CacheName       `json:"cache"`
	StorePathHash nixid.StorePathHash   `json:"store_path_hash"`
	StorePath     string                `json:"store_path"`
	References    []string              `json:"references"`
	Deriver       string                `json:"deriver,omitempty"`
	System        string                `json:"system,omitempty"`
	CA            string                `json:"ca,omitempty"`
	Sigs          []string              `json:"sigs,omitempty"`
	NarHash       nixid.NarHash         `json:"nar_hash"`
	NarSize       int64                 `json:"nar_size"`
	Manifest      chunkstore.ManifestID `json:"manifest"`
	FileSize      int64                 `json:"file_size"`
	CreatedAt     time.Time             `json:"created_at"`
	CreatedBy     string                `json:"created_by,omitempty"`
	// AccessedAt is the last download of its NAR anywhere in the cluster
	// that has reached the catalog (nodes fold downloads in batches; see
	// TouchObjects); zero if never downloaded. A re-push resets it, as
	// Attic's does. Retention keeps an object while CreatedAt or AccessedAt
	// is within the period.
	AccessedAt time.Time `json:"accessed_at,omitzero"`
	// Upload is the NAR file as the uploader's own narinfo named it, for a
	// path pushed with Nix's PUT protocol; nil for Attic uploads.
	Upload *UploadedNAR `json:"upload,omitempty"`
}

// LastUsed is when the object was last pushed or downloaded.
func (o Object) LastUsed() time.Time {
	if o.AccessedAt.After(o.CreatedAt) {
		return o.AccessedAt
	}
	return o.CreatedAt
}

// UploadedNAR is the NAR file a Nix client PUT ("nar/<filehash>.nar.xz"):
// Nix remembers the narinfo it uploaded (narinfo-cache-positive-ttl, 30 days)
// and downloads that URL, in that compression, when it later substitutes
// from the same store URL on the same machine. zstd and none are served from
// the object's own chunks; any other compression needs the file as uploaded
// (File), which is kept only for uploads to the substituter URL (an upload
// under /upload/ cannot shadow the substituter in Nix's cache).
type UploadedNAR struct {
	URL         string                `json:"url"`         // "nar/<filehash>.nar[.ext]"
	Compression string                `json:"compression"` // the narinfo's Compression
	File        chunkstore.ManifestID `json:"file,omitzero"`
	FileSize    int64                 `json:"file_size,omitempty"`
}

// File is an auxiliary file of a cache (build log, .ls listing, realisation).
type File struct {
	Cache           nixid.CacheName       `json:"cache"`
	Name            string                `json:"name"`
	Manifest        chunkstore.ManifestID `json:"manifest"`
	Size            int64                 `json:"size"`
	ContentType     string                `json:"content_type,omitempty"`
	ContentEncoding string                `json:"content_encoding,omitempty"`
	CreatedAt       time.Time             `json:"created_at"`
}
