package v1

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrorResponse is Attic's error body: {"code":404,"error":"NoSuchCache","message":"…"}.
type ErrorResponse struct {
	Code    int    `json:"code"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

// GetMissingPathsRequest is the body of POST /_api/v1/get-missing-paths.
type GetMissingPathsRequest struct {
	Cache           string   `json:"cache"`
	StorePathHashes []string `json:"store_path_hashes"`
}

// GetMissingPathsResponse lists the hashes the cache lacks.
type GetMissingPathsResponse struct {
	MissingPaths []string `json:"missing_paths"`
}

// UploadPathNarInfo is the upload info sent with PUT /_api/v1/upload-path, in the
// X-Attic-Nar-Info header or as a JSON preamble of the body.
type UploadPathNarInfo struct {
	Cache         string   `json:"cache"`
	StorePathHash string   `json:"store_path_hash"`
	StorePath     string   `json:"store_path"`
	References    []string `json:"references"`
	System        *string  `json:"system"`
	Deriver       *string  `json:"deriver"`
	Sigs          []string `json:"sigs"`
	CA            *string  `json:"ca"`
	NarHash       string   `json:"nar_hash"`
	NarSize       int64    `json:"nar_size"`
}

// Upload result kinds.
const (
	UploadKindUploaded     = "Uploaded"
	UploadKindDeduplicated = "Deduplicated"
)

// UploadPathResult is the response of PUT /_api/v1/upload-path.
type UploadPathResult struct {
	Kind             string   `json:"kind"`
	FileSize         *int64   `json:"file_size,omitempty"`
	FracDeduplicated *float64 `json:"frac_deduplicated"`
}

// Headers of the upload-path request.
const (
	HeaderNarInfo         = "X-Attic-Nar-Info"
	HeaderNarInfoPreamble = "X-Attic-Nar-Info-Preamble-Size"
	HeaderCacheVisibility = "X-Attic-Cache-Visibility"
)

// CacheConfig is the body of GET and PATCH /_api/v1/cache-config/{cache}. Every
// field is optional; nil fields are omitted, as Attic does.
type CacheConfig struct {
	Keypair             *KeypairConfig `json:"keypair,omitempty"`
	SubstituterEndpoint *string        `json:"substituter_endpoint,omitempty"`
	APIEndpoint         *string        `json:"api_endpoint,omitempty"`
	// UploadEndpoint (Garret's addition) is the URL for `nix copy --to`: the
	// binary-cache routes under /upload/, so the narinfo Nix remembers from
	// its own upload is not taken for the substituter's (see README).
	UploadEndpoint        *string                `json:"upload_endpoint,omitempty"`
	PublicKey             *string                `json:"public_key,omitempty"`
	IsPublic              *bool                  `json:"is_public,omitempty"`
	StoreDir              *string                `json:"store_dir,omitempty"`
	Priority              *int32                 `json:"priority,omitempty"`
	UpstreamCacheKeyNames *[]string              `json:"upstream_cache_key_names,omitempty"`
	RetentionPeriod       *RetentionPeriodConfig `json:"retention_period,omitempty"`
	// Nodes (Garret's addition) are the cluster's live nodes, each with its
	// substituter URL for this cache, so `garret use` can measure them and
	// write the nearest first; absent on a lone node (and when no other node
	// has a URL a client can reach). At most 64, every region represented.
	Nodes []CacheNode `json:"garret_nodes,omitempty"`
}

// CacheNode is one node serving a cache.
type CacheNode struct {
	Name                string `json:"name"`
	Region              string `json:"region,omitempty"`
	SubstituterEndpoint string `json:"substituter_endpoint"`
}

// NodeEndpoint is a live node and its public API URL.
type NodeEndpoint struct {
	Name, Region, APIURL string
	Self                 bool // the node that answers
	Leader               bool // the Raft leader, as the answering node knows it
}

// CreateCacheRequest is the body of POST /_api/v1/cache-config/{cache}.
type CreateCacheRequest struct {
	Keypair               KeypairConfig `json:"keypair"`
	IsPublic              bool          `json:"is_public"`
	StoreDir              string        `json:"store_dir"`
	Priority              int32         `json:"priority"`
	UpstreamCacheKeyNames []string      `json:"upstream_cache_key_names"`
}

// KeypairConfig is serde's external tagging of Attic's enum: "Generate" or
// {"Keypair":"name:base64"}.
type KeypairConfig struct {
	Generate bool
	Keypair  string
}

// MarshalJSON encodes the enum the way serde does.
func (k KeypairConfig) MarshalJSON() ([]byte, error) {
	if k.Generate {
		return json.Marshal("Generate")
	}
	return json.Marshal(map[string]string{"Keypair": k.Keypair})
}

// UnmarshalJSON decodes "Generate" or {"Keypair": "..."}.
func (k *KeypairConfig) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s != "Generate" {
			return fmt.Errorf("keypair: unknown variant %q, expected \"Generate\" or {\"Keypair\": …}", s)
		}
		*k = KeypairConfig{Generate: true}
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil || len(m) != 1 || m["Keypair"] == "" {
		return errors.New(`keypair: expected "Generate" or {"Keypair": "name:base64"}`)
	}
	*k = KeypairConfig{Keypair: m["Keypair"]}
	return nil
}

// RetentionPeriodConfig is "Global" or {"Period": seconds}.
type RetentionPeriodConfig struct {
	Global bool
	Period uint32
}

// MarshalJSON encodes the enum the way serde does.
func (r RetentionPeriodConfig) MarshalJSON() ([]byte, error) {
	if r.Global {
		return json.Marshal("Global")
	}
	return json.Marshal(map[string]uint32{"Period": r.Period})
}

// UnmarshalJSON decodes "Global" or {"Period": N}.
func (r *RetentionPeriodConfig) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s != "Global" {
			return fmt.Errorf("retention_period: unknown variant %q, expected \"Global\" or {\"Period\": N}", s)
		}
		*r = RetentionPeriodConfig{Global: true}
		return nil
	}
	var m map[string]uint32
	if err := json.Unmarshal(b, &m); err != nil || len(m) != 1 {
		return errors.New(`retention_period: expected "Global" or {"Period": seconds}`)
	}
	p, ok := m["Period"]
	if !ok {
		return errors.New(`retention_period: expected "Global" or {"Period": seconds}`)
	}
	*r = RetentionPeriodConfig{Period: p}
	return nil
}

// DeletePathsRequest is the body of POST /_api/v1/delete-paths (Garret; needs
// the delete permission). Attic has no such route (attic#265).
type DeletePathsRequest struct {
	Cache           string   `json:"cache"`
	StorePathHashes []string `json:"store_path_hashes"`
}

// DeletePathsResponse says how many of the paths existed and were deleted.
type DeletePathsResponse struct {
	Deleted int `json:"deleted"`
}

// RevokeTokenRequest is the body of POST /_api/v1/revoke-token (Garret; needs
// the cluster-admin claim). One of two forms: the token's jti or the token
// itself; or a rule — Subject, Cache (a cache name or pattern) or both — that
// revokes every matching token issued before IssuedBefore (default: now).
type RevokeTokenRequest struct {
	JTI          string     `json:"jti,omitempty"`
	Token        string     `json:"token,omitempty"`
	Subject      string     `json:"subject,omitempty"`
	Cache        string     `json:"cache,omitempty"`
	IssuedBefore *time.Time `json:"issued_before,omitempty"`
}

// RevokeTokenResponse names the revoked token id, or the rule recorded.
type RevokeTokenResponse struct {
	JTI          string     `json:"jti,omitempty"`
	Subject      string     `json:"subject,omitempty"`
	Cache        string     `json:"cache,omitempty"`
	IssuedBefore *time.Time `json:"issued_before,omitempty"`
}

// CacheSummary is one entry of GET /_api/v1/caches (Garret).
type CacheSummary struct {
	Name      string `json:"name"`
	IsPublic  bool   `json:"is_public"`
	Priority  int32  `json:"priority"`
	PublicKey string `json:"public_key"`
}

// ListCachesResponse lists the caches the caller can discover.
type ListCachesResponse struct {
	Caches []CacheSummary `json:"caches"`
}

// ClusterNode is one node in GET /_api/v1/cluster (Garret; cluster-admin).
type ClusterNode struct {
	Name   string `json:"name"`
	PeerID string `json:"peer_id"`
	Region string `json:"region,omitempty"`
	APIURL string `json:"api_url,omitempty"`
	Role   string `json:"role"` // voter, nonvoter, or joining (gossip only)
	Leader bool   `json:"leader"`
	// Health is what the answering node knows of it: alive (gossip lists
	// it and it answered the status query), suspect (gossip still lists it
	// but it did not answer), dead (gossip declared it dead, or does not
	// show this Raft member at all) or left (it announced its leave).
	Health string  `json:"health,omitempty"`
	RTTMs  float64 `json:"rtt_ms"` // from the answering node; 0 for itself or unmeasured
	// The node's own Raft progress, asked by the answering node; omitted
	// (and Unreachable set) when it did not answer within 2 s.
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	CommitIndex  uint64 `json:"commit_index,omitempty"`
	Term         uint64 `json:"term,omitempty"`
	State        string `json:"state,omitempty"` // leader, follower, candidate, shutdown
	Unreachable  bool   `json:"unreachable,omitempty"`
	// Replication is the node's syncer, as it reported it; omitted for a
	// node that does not sync (sync = false) or did not answer.
	Replication *ReplicationStatus `json:"replication,omitempty"`
}

// ReplicationStatus is one node's background copying: what placement gives
// it that it does not hold yet, how old that is, and how fast it copies.
type ReplicationStatus struct {
	// Backlog is how many objects and files this node should hold and does
	// not yet (each one is a copy below its target); BacklogBytes their
	// stored size where known.
	Backlog      int   `json:"backlog"`
	BacklogBytes int64 `json:"backlog_bytes"`
	// LagSeconds is the age of the oldest of them, since its push (0:
	// nothing to copy).
	LagSeconds float64 `json:"lag_seconds"`
	// FetchBytesPerSecond is the rate of copied frame bytes over the last
	// minute.
	FetchBytesPerSecond float64 `json:"fetch_bytes_per_second"`
	// Scanning is set while the node reads the whole catalog (at start, or
	// when it fell too far behind the change log); Scanned counts what it
	// has read so far.
	Scanning bool `json:"scanning,omitempty"`
	Scanned  int  `json:"scanned,omitempty"`
	// Since the node started: objects made complete here, frame bytes
	// copied, failed attempts (retried).
	Fetched    int64 `json:"fetched"`
	FrameBytes int64 `json:"frame_bytes"`
	Failed     int64 `json:"failed"`
}

// ClusterStatus is the answering node's view of the cluster.
type ClusterStatus struct {
	Node         string        `json:"node"`
	Leader       string        `json:"leader,omitempty"` // peer ID
	Term         uint64        `json:"term"`             // the answering node's Raft term: it grows with every election
	AppliedIndex uint64        `json:"applied_index"`
	CommitIndex  uint64        `json:"commit_index"`
	Nodes        []ClusterNode `json:"nodes"`
	// Departed are nodes gossip saw die or leave that are no longer in the
	// Raft configuration (so not in Nodes), most recent first; at most 32,
	// forgotten when the answering node restarts.
	Departed []DepartedNode `json:"departed,omitempty"`
}

// DepartedNode is a node gossip saw go that is not a Raft member any more.
type DepartedNode struct {
	Name   string    `json:"name"`
	Region string    `json:"region,omitempty"`
	Health string    `json:"health"` // dead or left
	Since  time.Time `json:"since"`
}

// WebLinkResponse answers POST /_api/v1/cluster/web-link (Garret;
// cluster-admin): a link that opens the cluster page in a browser without a
// token of its own, valid until ExpiresAt.
type WebLinkResponse struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ClusterJoinRequest is the body of POST /_api/v1/cluster/join (Garret;
// cluster-admin): gossip addresses ("host:port") of existing members.
type ClusterJoinRequest struct {
	Addrs []string `json:"addrs"`
}

// ClusterJoinResponse says how many of the addresses answered.
type ClusterJoinResponse struct {
	Contacted int `json:"contacted"`
}

// ClusterLeaveResponse answers POST /_api/v1/cluster/leave (Garret;
// cluster-admin) before the node leaves and its garretd exits.
type ClusterLeaveResponse struct {
	Node    string `json:"node"`
	Message string `json:"message"`
}

// ClusterRemoveRequest is the body of POST /_api/v1/cluster/remove (Garret;
// cluster-admin): a node name or peer ID.
type ClusterRemoveRequest struct {
	Node string `json:"node"`
}

// ClusterRemoveResponse names the node removed from the Raft configuration.
// StillAlive means gossip still sees it, so the leader will add it again.
type ClusterRemoveResponse struct {
	Node       string `json:"node"`
	PeerID     string `json:"peer_id"`
	StillAlive bool   `json:"still_alive"`
	Message    string `json:"message"`
}

// ClusterScrubRequest is the (optional) body of POST /_api/v1/cluster/scrub
// (Garret; cluster-admin).
type ClusterScrubRequest struct {
	// Rate is the frame bytes per second the scrub reads; 0: the node's
	// [cluster] scrub-rate.
	Rate int64 `json:"rate,omitempty"`
}

// ClusterGCResponse reports one garbage collection pass of the answering
// node (POST /_api/v1/cluster/gc, Garret; cluster-admin): the objects
// retention removed from the catalog (counted by the leader only, which runs
// retention for the cluster) and what the sweep freed from this node's
// store.
type ClusterGCResponse struct {
	Node              string `json:"node"`
	ObjectsExpired    int    `json:"objects_expired"`
	ManifestsDeleted  int    `json:"manifests_deleted"`
	ChunksDeleted     int    `json:"chunks_deleted"`
	BytesFreed        int64  `json:"bytes_freed"`
	SegmentsCompacted int    `json:"segments_compacted"`
	DiskBytesFreed    int64  `json:"disk_bytes_freed"`
	TookMs            int64  `json:"took_ms"`
}

// ClusterScrubResponse reports a scrub of the answering node's chunks and
// the repair of the bad ones from peers.
type ClusterScrubResponse struct {
	Node string `json:"node"`
	// Chunks and Bytes count the frames checked and their bytes; Bad those
	// that failed (and were dropped).
	Chunks int64 `json:"chunks"`
	Bytes  int64 `json:"bytes"`
	Bad    int64 `json:"bad"`
	// Repaired bad chunks were fetched again from a peer; Unrepaired ones
	// no peer had (they stay missing here: reads fetch them from a peer
	// that gets them later, or a re-push stores them).
	Repaired   int64 `json:"repaired"`
	Unrepaired int64 `json:"unrepaired"`
	// BadChunks lists the ids of the first bad chunks (at most 100).
	BadChunks []string `json:"bad_chunks,omitempty"`
	TookMs    int64    `json:"took_ms"`
}
